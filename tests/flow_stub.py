"""A fast stand-in for `trainables.flow.run_flow` with the same interface and reports, for the Ray tests
that are about the search machinery (faults, resume, export) rather than about EarlyBERT itself.

It trains a tiny scratch BERT for a few steps on random tokens with the real training loop, draws a
"mask distance" that shrinks with the step (faster for larger `eps`), agrees the early-bird stop through
`reporter.agree`, and saves a real ticket with `trainables.ticket.save_ticket`. Knobs carried by FlowConfig
fields: `lr >= 0.5` makes the loss NaN (the trial must fail cleanly); `seed == 13` crashes the worker
process once (hard exit) after its first checkpoint, to exercise restarts from a checkpoint. A `baseline`
trial only reports its dense steps (`_baseline`).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch

CRASH_SEED = 13


def _batches(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(1000, 2000, (8, 12), generator=g)
        out.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": (ids[:, 0] % 2).long()})
    return out


def stub_flow(cfg, reporter, ticket_dir: str | None = None):
    if cfg.baseline:
        return _baseline(cfg, reporter)
    from tickettune.trainables.model.build import ScratchConfig, scratch_model
    from tickettune.trainables.ticket.format import save_ticket
    from tickettune.trainables.training.loop import TrainConfig, train

    resumed_from = None
    start_step = 0
    ckpt = reporter.checkpoint() if hasattr(reporter, "checkpoint") else None
    if ckpt is not None:
        state = json.loads((Path(ckpt) / "state.json").read_text())
        start_step, resumed_from = state["step"], state["step"]
    torch.manual_seed(cfg.seed)
    model, tok = scratch_model(ScratchConfig(layers=2, heads=2, hidden=32, ffn=64, dropout=0.0), head="classification")
    model = reporter.prepare_model(model, find_unused=False)
    data = _batches(4, cfg.seed)
    steps = cfg.search_max_steps
    rate = 0.05 + cfg.eps  # distance decays faster with a looser eps: converges earlier
    found_at = None
    step = start_step
    pause = float(os.environ.get("TICKETTUNE_STUB_SLEEP", "0"))  # seconds of "work" per interval
    for step in range(start_step + cfg.mask_interval, steps + 1, cfg.mask_interval):
        time.sleep(pause)
        lr = cfg.lr
        if lr >= 0.5:
            raise FloatingPointError(f"loss is nan at step {step}: training diverged")
        res = train(model, data, TrainConfig(lr=lr, max_steps=2, warmup_ratio=0.0, progress=False, fused=False))
        dist = math.exp(-rate * step)
        bird = reporter.agree(dist < cfg.eps)
        interim = cfg.head_ratio if os.environ.get("TICKETTUNE_STUB_INTERIM") == "1" else math.nan
        metrics = {
            "phase": "search",
            "step": step,
            "loss": res.losses[-1],
            "mask_distance": dist,
            "head_distance": dist,
            "ffn_distance": dist,
            "early_bird": bird,
            "val_metric": interim,
            "relative_cost": step / (steps + cfg.ticket_steps),
            "done": False,
        }
        if interim == interim:  # an interim dev metric: give it an eval_step, ASHA's clock (the trial's steps)
            metrics["eval_step"] = step
        ckpt_dir = None
        if cfg.seed == CRASH_SEED and reporter.rank == 0 and resumed_from is None:
            ckpt_dir = reporter.checkpoint_dir()
            (Path(ckpt_dir) / "state.json").write_text(json.dumps({"step": step}))
        reporter.report(metrics, checkpoint_dir=ckpt_dir)
        if cfg.seed == CRASH_SEED and resumed_from is None:
            time.sleep(3.0)  # more work (Ray Train registers the checkpoint meanwhile), then ...
            os._exit(1)  # ... the worker dies: Ray must restart it from the checkpoint above
        if bird:
            found_at = step
            break
    converged = found_at is not None
    if not converged and cfg.unconverged == "stop":
        reporter.report(
            {
                "phase": "done",
                "step": step,
                "converged": False,
                "early_bird": False,
                "early_bird_step": -1,
                "search_steps": step,
                "val_metric": math.nan,
                "relative_cost": step / (steps + cfg.ticket_steps),
                "done": True,
            }
        )
        return None
    val = 0.5 + 0.4 * cfg.head_ratio - 0.2 * abs(math.log10(cfg.lr) + 3)  # a smooth made-up score
    cost = (step + cfg.ticket_steps * (1 - cfg.head_ratio)) / (steps + cfg.ticket_steps)
    if ticket_dir is not None and reporter.rank == 0:
        unwrapped = model.module if hasattr(model, "module") else model
        save_ticket(
            unwrapped,
            tok,
            ticket_dir,
            {"val_metric": val, "relative_cost": cost, "early_bird_step": found_at, "stub": True},
            overwrite=True,
        )
    reporter.report(
        {
            "phase": "done",
            "step": step + cfg.ticket_steps,
            "converged": converged,
            "early_bird": converged,
            "early_bird_step": -1 if found_at is None else found_at,
            "search_steps": step,
            "val_metric": val,
            "relative_cost": cost,
            "resumed_from": resumed_from,
            "worker_pid": os.getpid(),
            "world_size": reporter.world_size,
            "done": True,
        }
    )
    return val


def _baseline(cfg, reporter) -> float:
    """The dense reference trial: `budget_steps` in reports every `mask_interval` steps. With interim metrics it
    scores 0.0 at each (eval_step: its steps, as the tickets'): behind every ticket, so a scheduler that judged it
    would stop it."""
    interim = os.environ.get("TICKETTUNE_STUB_INTERIM") == "1"
    pause = float(os.environ.get("TICKETTUNE_STUB_SLEEP", "0"))
    budget = cfg.budget_steps
    for step in range(cfg.mask_interval, budget, cfg.mask_interval):
        time.sleep(pause)
        metrics = {"phase": "baseline", "step": step, "val_metric": 0.0 if interim else math.nan}
        if interim:
            metrics["eval_step"] = step
        reporter.report({**metrics, "relative_cost": step / budget, "baseline": True, "done": False})
    done = {"phase": "done", "step": budget, "val_metric": 0.0, "relative_cost": 1.0, "baseline": True}
    reporter.report({**done, "converged": False, "early_bird_step": -1, "search_steps": 0, "done": True})
    return 0.0


class _CrashAfterCheckpoint:
    """Wraps a Reporter: on the first attempt (no checkpoint to restore) the worker process dies right
    after reporting its first checkpoint, as a machine failure would."""

    def __init__(self, inner):
        self.inner = inner
        self.rank, self.world_size = inner.rank, inner.world_size
        self.restored = inner.checkpoint()

    def checkpoint(self):
        return self.restored

    def report(self, metrics, checkpoint_dir=None):
        self.inner.report(metrics, checkpoint_dir=checkpoint_dir)
        if checkpoint_dir is not None and self.restored is None:
            time.sleep(3.0)  # Ray registers the checkpoint meanwhile
            os._exit(1)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def real_flow_crashing_once(cfg, reporter, ticket_dir: str | None = None):
    """`trainables.flow.run_flow` whose worker dies once, right after the search-phase checkpoint."""
    from tickettune.trainables.flow import run_flow

    return run_flow(cfg, _CrashAfterCheckpoint(reporter), ticket_dir=ticket_dir)


def space(trial) -> dict:
    """A hand-written define-by-run space for the stub (the YAML spaces are tested elsewhere)."""
    return {
        "head_ratio": trial.suggest_float("head_ratio", 0.1, 0.5),
        "eps": trial.suggest_float("eps", 0.05, 0.2),
        "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        "search_max_steps": 40,
        "mask_interval": 5,
        "ticket_steps": 10,
        "unconverged": "ticket",
        "scratch": {"layers": 2, "heads": 2, "hidden": 32, "ffn": 64},
        "task": "sst2",
    }


def space_with_nan(trial) -> dict:
    """`space`, except that the second trial gets a learning rate whose loss is NaN, and the third an ε
    its mask never gets within (it ends unconverged, without a ticket)."""
    cfg = space(trial)
    if trial.number == 1:
        cfg["lr"] = 0.9
    if trial.number == 2:
        cfg.update(eps=0.001, unconverged="stop")
    return cfg


def space_ahead_behind(trial) -> dict:
    """`space` whose interim dev metric (TICKETTUNE_STUB_INTERIM=1: head_ratio) is 0.5, 0.1, 0.2, 0.5, ... by trial;
    the first ends at the report past ASHA's first rung (eval_step 12 of max_t 50: at step 15), a tight ε keeps the
    others' search phases going past it
    (here, not in a test module: Tune's searcher state pickles the space by reference, and a resume imports it)."""
    cfg = space(trial)
    cfg.update(head_ratio=[0.5, 0.1, 0.2][trial.number % 3], eps=[0.12, 0.05, 0.05][trial.number % 3])
    return cfg


def space_with_crash(trial) -> dict:
    """`space`, except that the second trial's worker dies once (seed CRASH_SEED)."""
    cfg = space(trial)
    cfg["seed"] = CRASH_SEED if trial.number == 1 else 0
    return cfg


# ------------------------------------------------------------------------------------------ Ray helpers


def by_value() -> None:
    """Ship this module to Ray workers by value (the tests folder is not on their path)."""
    import sys

    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def spec_dict(root, name: str, **search) -> dict:
    return {
        "name": name,
        "storage": str(root),
        "search": {"num_samples": 2, "seed": 0, "scheduler": "none", "max_failures": 1, **search},
        # the budget the stub's `space` uses too (ASHA's max_t comes from the spec)
        "fixed": {"task": "sst2", "search_max_steps": 40, "ticket_steps": 10},
        "space": {"head_ratio": {"low": 0.1, "high": 0.5}},
    }


def ray_is_down() -> bool:
    import ray

    return not ray.is_initialized()


try:
    from ray import tune as _tune

    class KillAfter(_tune.Callback):
        """Tune callback: SIGKILL this (driver) process shortly after `n` trials completed, once the
        experiment state recording them has been saved (TUNE_GLOBAL_CHECKPOINT_S well under 1.5 s). Only when
        $TICKETTUNE_TEST_KILL=1, so that a resumed search (Tune restores callbacks) is not killed too."""

        def __init__(self, n: int, session_file: str):
            self.n, self.session_file = n, session_file
            self.completed: list[str] = []
            self.at = None

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.completed.append(trial.trial_id)
            if len(self.completed) >= self.n and self.at is None:
                self.at = time.monotonic()

        def on_step_begin(self, iteration, trials, **info):
            if self.at is None or os.environ.get("TICKETTUNE_TEST_KILL") != "1":
                return
            if time.monotonic() - self.at > 1.5:
                import signal

                import ray

                Path(self.session_file).write_text(
                    json.dumps(
                        {
                            "session": ray._private.worker._global_node.get_session_dir_path(),
                            "completed": self.completed,
                        }
                    )
                )
                os.kill(os.getpid(), signal.SIGKILL)
except ImportError:  # pragma: no cover
    pass


def kill_session_leftovers(session_dir: str, timeout: float = 20.0) -> list[int]:
    """After a hard kill of the process that started a local Ray instance, its GCS and raylet die with
    it but a few agents linger: end the processes that still hold files of that session, by pid."""
    import signal

    deadline = time.time() + timeout
    killed: list[int] = []
    while time.time() < deadline:
        pids = []
        for p in Path("/proc").iterdir():
            if not p.name.isdigit() or int(p.name) == os.getpid():
                continue
            try:
                if any(os.readlink(fd).startswith(session_dir) for fd in (p / "fd").iterdir()):
                    pids.append(int(p.name))
            except OSError:
                continue
        if not pids:
            return killed
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
    return killed
