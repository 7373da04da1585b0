"""One trial, start to finish: EarlyBERT search phase -> draw -> prune -> ticket training -> eval.

This is what a Ray Train worker runs (searcher/trial.py) and what `tickettune earlybert` runs locally.
Everything Ray-specific comes in through the `Reporter`: where metrics go, how the early-bird stop is
agreed between ranks, how the model and loaders are prepared for data parallelism.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from . import carry
from . import pld as pld_mod
from .budget import budget_problems, budget_steps, relative_time, ticket_plan
from .callbacks import CostMeter, Every
from .fields import unknown_keys
from .flops import shape_of, train_flops_per_sequence
from .model import load_model, scratch_from_dict, scratch_model
from .precision import PRECISIONS
from .precision import resolve as resolve_precision
from .reporter import LocalReporter, Reporter
from .search_phase import checkpoint, finished_checkpoint, restore, search_phase
from .ticket import save_ticket
from .tasks import DataArgs, Task, get_task, task_problems
from .train import TrainConfig, make_optimizer, train

PLD_PHASES = ("search", "ticket", "both")
# compile's bucket when pad_to_multiple_of is unset: 9 shapes per SST-2 epoch instead of 56, at +24% tokens
# (bench_fast_path's unpadding_bound); without compile exact lengths are cheaper on every device measured
COMPILE_PAD = 8


@dataclass
class FlowConfig:
    # what to train on
    model: str = "minilm-l6"            # alias, local dir, hub id; ignored when `scratch` is given
    scratch: dict | None = None         # ScratchConfig fields: pre-training from random weights
    task: str | dict = "sst2"           # a task name (tasks.names()) or a dict describing own data (tasks/)
    data_root: str | None = None
    max_train_samples: int | None = 2000
    max_eval_samples: int | None = None
    max_length: int = 64
    batch_size: int = 32
    seed: int = 0
    group_by_length: bool = True        # train batches of similar lengths (sampler.py), as Trainer's option
    precision: str = "auto"             # auto | fp32 | bf16 | fp16: autocast of every forward (precision.py)
    pad_to_multiple_of: int | None = None  # train batches padded to a multiple: few shapes (data.py); None: exact
    compile: bool = False               # torch.compile the training forward/backward (compile_step.py); pads to 8
    compile_cache_dir: str | None = None  # inductor's cache; a search puts it under its experiment folder
    # search phase (EarlyBERT)
    lr: float = 1e-4
    coef_lr: float | None = None
    head_ratio: float = 1 / 3
    ffn_ratio: float = 0.4
    head_scope: str = "layer"
    ffn_scope: str = "global"
    min_heads: int = 1
    min_ffn: int = 8
    ffn_multiple: int | None = 8        # kept FFN widths rounded to a multiple of 8: faster matmuls
    lambda_head: float = 1e-4
    lambda_ffn: float = 1e-4
    eps: float = 0.1
    window: int = 5
    mask_interval: int = 10
    search_max_steps: int = 300
    detect: bool = True                 # False: draw at search_max_steps (fixed budget, as the reference)
    unconverged: str = "stop"           # "stop": end the trial unconverged; "ticket": draw anyway
    # the dense run this trial stands in for (budget.py): at most one of the two; neither: the legacy
    # budget search_max_steps + ticket_steps
    budget_steps: int | None = None
    budget_epochs: float | None = None
    baseline: bool = False              # the dense reference: fine-tune the whole budget, no search, no pruning
    # ticket phase
    ticket_mode: str = "continue"       # "continue" (measured better, README): see budget.py; "rewind": the paper
    ticket_steps: int | None = None     # only without a budget (default 300); with one it is derived
    ticket_lr: float = 1e-4            # rewind's peak lr (continue goes on with `lr`'s schedule)
    eval_interval: int | None = None    # dev metric every N ticket steps too (ASHA's rungs); None: at the end
    # progressive layer dropping
    pld: bool = False
    pld_phase: str = "ticket"
    theta_bar: float = 0.5
    gamma: float = 0.001
    warmup_ratio: float = 0.1

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("invalid trial config:\n  " + "\n  ".join(problems))

    def problems(self) -> list[str]:
        p = []
        p += task_problems(self.task)
        for name in ("head_ratio", "ffn_ratio"):
            v = getattr(self, name)
            if not 0 <= v < 1:
                p.append(f"{name}={v!r} must be in [0, 1)")
        for name in ("lambda_head", "lambda_ffn"):
            if getattr(self, name) < 0:
                p.append(f"{name}={getattr(self, name)!r} must be >= 0")
        for name in ("lr", "ticket_lr"):
            if not getattr(self, name) > 0:
                p.append(f"{name}={getattr(self, name)!r} must be > 0")
        for name in ("batch_size", "max_length", "mask_interval", "search_max_steps"):
            if getattr(self, name) < 1:
                p.append(f"{name}={getattr(self, name)!r} must be >= 1")
        p += budget_problems(self)
        if self.eval_interval is not None and self.eval_interval < 1:
            p.append(f"eval_interval={self.eval_interval!r} must be >= 1 (or null: only at the end)")
        if not 0 <= self.eps <= 1:
            p.append(f"eps={self.eps!r} must be in [0, 1]")
        if self.window < 2:
            p.append(f"window={self.window!r} must be >= 2")
        if self.pld_phase not in PLD_PHASES:
            p.append(f"pld_phase={self.pld_phase!r}: expected one of {PLD_PHASES}")
        if self.precision not in PRECISIONS:
            p.append(f"precision={self.precision!r}: expected one of {PRECISIONS}")
        if self.pad_to_multiple_of is not None and (isinstance(self.pad_to_multiple_of, bool)
                                                    or not isinstance(self.pad_to_multiple_of, int)
                                                    or self.pad_to_multiple_of < 1):
            p.append(f"pad_to_multiple_of={self.pad_to_multiple_of!r} must be an integer >= 1 (or null)")
        if self.compile and self.pld:
            p.append("compile=true with pld=true: PLD picks the layers each step, a new graph for each choice; "
                     "use one or the other")
        if self.unconverged not in ("stop", "ticket"):
            p.append(f"unconverged={self.unconverged!r}: expected 'stop' or 'ticket'")
        if not 0 < self.theta_bar <= 1:
            p.append(f"theta_bar={self.theta_bar!r} must be in (0, 1]")
        if self.gamma < 0:
            p.append(f"gamma={self.gamma!r} must be >= 0")
        return p

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FlowConfig":
        unknown, _ = unknown_keys(cls, d)
        if unknown:
            raise ValueError(f"unknown trial config keys: {unknown}")
        return cls(**d)

    @property
    def metric_mode(self) -> str:
        return get_task(self.task).mode

    @property
    def task_obj(self) -> Task:
        return get_task(self.task)

    def data_args(self) -> DataArgs:
        return DataArgs(root=self.data_root, max_length=self.max_length, batch_size=self.batch_size,
                        max_train_samples=self.max_train_samples, max_eval_samples=self.max_eval_samples,
                        seed=self.seed, group_by_length=self.group_by_length,
                        pad_to_multiple_of=self.pad_to_multiple_of or (COMPILE_PAD if self.compile else None))

    def compile_args(self) -> dict:
        """The TrainConfig fields every phase's loop takes from this trial."""
        return {"compile": self.compile, "compile_cache_dir": self.compile_cache_dir}

    def pld_in(self, phase: str) -> bool:
        return self.pld and self.pld_phase in (phase, "both")


@dataclass
class FlowResult:
    val_metric: float
    metric_name: str
    converged: bool
    early_bird_step: int | None
    search_steps: int
    ticket_steps: int
    relative_cost: float
    seconds: dict = field(default_factory=dict)
    ticket_dir: str | None = None
    history: list[dict] = field(default_factory=list)


def _data(cfg: FlowConfig, tokenizer, reporter: Reporter):
    task, args = cfg.task_obj, cfg.data_args()
    return reporter.prepare_loader(task.train_loader(tokenizer, args)), task.eval_data(tokenizer, args)


def _build(cfg: FlowConfig):
    task = cfg.task_obj
    task.check(cfg.data_args())  # every row read and checked before any model is built
    if cfg.scratch is not None:
        return scratch_model(scratch_from_dict(cfg.scratch), head=task.head, num_labels=task.num_labels)
    return load_model(cfg.model, head=task.head, num_labels=task.num_labels)


def validation(cfg: FlowConfig, model: nn.Module, data) -> tuple[str, float]:
    task = cfg.task_obj
    return task.main_metric, float(task.evaluate(model, data, cfg.precision)[task.main_metric])


def run_flow(cfg: FlowConfig, reporter: Reporter | None = None, ticket_dir: str | None = None) -> FlowResult:
    reporter = reporter or LocalReporter()
    resolve_precision(cfg.precision, "cuda" if torch.cuda.is_available() else "cpu")  # refused before any compute
    torch.manual_seed(cfg.seed)
    model, tokenizer = _build(cfg)
    train_loader, eval_loader = _data(cfg, tokenizer, reporter)
    budget = budget_steps(cfg, _batches_per_epoch(train_loader))  # the dense run this trial replaces
    dense_step = cfg.batch_size * train_flops_per_sequence(shape_of(model), cfg.max_length)
    history: list[dict] = []
    metric_name, val = validation_name(cfg), math.nan
    cost = CostMeter(model, cfg.max_length, cfg.batch_size, dense_step)
    # dense step time (measured); wall-clock spent training; dev evaluations inside the loop (not training)
    clock = {"dense_step_s": math.nan, "seconds": 0.0, "eval": 0.0}

    def send(metrics: dict, checkpoint_dir: str | None = None) -> None:
        metrics = {"val_metric": val, "relative_cost": cost.flops / (dense_step * budget),
                   "relative_time": relative_time(clock["seconds"], clock["dense_step_s"], budget),
                   "train_seconds": clock["seconds"], "budget_steps": budget, "baseline": cfg.baseline, **metrics}
        history.append(metrics)
        reporter.report(metrics, checkpoint_dir=checkpoint_dir)

    if cfg.baseline:
        return _baseline(cfg, model, train_loader, eval_loader, reporter, budget, cost, clock, send, history)

    # --- search phase, unless a restarted worker finds it done in its checkpoint
    restored = restore(reporter)
    if restored is None:
        state, ticket, opt_state = search_phase(cfg, model, train_loader, reporter, cost, send, budget)
        if ticket is not None:
            checkpoint(reporter, state, ticket, tokenizer, opt_state, send)
    else:
        state, ticket, opt_state = restored
        cost.flops = state.flops
    del model
    seconds = {"search": state.seconds}
    clock.update(dense_step_s=state.seconds / max(1, state.steps), seconds=state.seconds)
    if ticket is None:  # not converged and cfg.unconverged == "stop"
        send({"phase": "done", "step": state.steps, "converged": False, "early_bird": False,
              "early_bird_step": -1, "search_steps": state.steps, "done": True})
        return FlowResult(math.nan, metric_name, False, None, state.steps, 0, cost.flops / (dense_step * budget),
                          seconds, None, history)

    # --- ticket phase: the pruned ticket, no L1; dev metric every eval_interval steps
    plan = ticket_plan(cfg, budget, state.steps)
    if cfg.pld_in("ticket"):
        pld_mod.attach(ticket, pld_mod.PLDConfig(cfg.theta_bar, cfg.gamma, cfg.seed))
    cost.shape, cost.dropper = shape_of(ticket), pld_mod.dropper_of(ticket)
    base = state.steps

    def ticket_report(step: int, logs: dict) -> None:
        nonlocal val
        clock["seconds"] = state.seconds + (time.perf_counter() - ticket_start) - clock["eval"]
        metrics = {"phase": "ticket", "step": base + step, "loss": logs["loss"], "lr": logs["lr"],
                   "early_bird": state.converged,
                   "done": False}
        if cfg.eval_interval and step % cfg.eval_interval == 0 and step < plan.steps:
            t0 = time.perf_counter()
            _, val = validation(cfg, ticket, eval_loader)
            clock["eval"] += time.perf_counter() - t0
            metrics["ticket_step"] = step  # only next to a fresh val_metric: what ASHA's rungs compare
        send(metrics)

    callbacks = [cost] + ([pld_mod.PLDCallback(cost.dropper)] if cost.dropper is not None else [])
    callbacks.append(Every([cfg.mask_interval, cfg.eval_interval], ticket_report))
    peak_lr = cfg.lr if cfg.ticket_mode == "continue" else cfg.ticket_lr  # continue: the same run goes on
    train_cfg = TrainConfig(lr=peak_lr, max_steps=plan.steps, seed=cfg.seed, warmup_ratio=cfg.warmup_ratio,
                            progress=False, precision=cfg.precision, start_step=plan.start_step,
                            schedule_steps=plan.horizon, **cfg.compile_args())
    optimizer = None
    if cfg.ticket_mode == "continue" and opt_state:  # the search's AdamW moments, pruned like the weights
        optimizer = make_optimizer(ticket, train_cfg)
        carry.load_state(optimizer, ticket, opt_state)
    wrapped = reporter.prepare_model(ticket, find_unused=cfg.pld_in("ticket"))
    _reseed(train_loader, cfg.seed)  # rewind: the dense run's first batches; continue: it skips what the search saw
    ticket_start = time.perf_counter()
    tuned = train(wrapped, train_loader, train_cfg, callbacks, optimizer=optimizer)
    seconds.update(ticket=tuned.seconds - clock["eval"], eval_during=clock["eval"])
    clock["seconds"] = state.seconds + seconds["ticket"]
    pld_mod.detach(ticket)
    start = time.perf_counter()
    metric_name, val = validation(cfg, ticket, eval_loader)
    seconds["eval"] = time.perf_counter() - start
    bird_step = state.early_bird_step if state.converged else None
    rel_cost = cost.flops / (dense_step * budget)
    info = {"flow": asdict(cfg), "task": cfg.task_obj.info(), "metric": metric_name, "val_metric": val,
            "converged": state.converged, "early_bird_step": bird_step, "relative_cost": rel_cost,
            "budget_steps": budget, "relative_time": relative_time(clock["seconds"], clock["dense_step_s"], budget),
            "masks": {"heads": state.head_masks, "ffn": state.ffn_masks}, "mask_history": state.mask_history}
    if ticket_dir is not None and reporter.rank == 0:
        save_ticket(ticket, tokenizer, ticket_dir, info, overwrite=True)
    send({"phase": "done", "step": base + tuned.steps, "ticket_step": tuned.steps, "converged": state.converged,
          "early_bird": state.converged, "early_bird_step": -1 if bird_step is None else bird_step,
          "search_steps": state.steps, "done": True}, checkpoint_dir=finished_checkpoint(reporter))
    return FlowResult(val, metric_name, state.converged, bird_step, state.steps, tuned.steps, rel_cost,
                      seconds, ticket_dir, history)


def _baseline(cfg: FlowConfig, model: nn.Module, train_loader, eval_loader, reporter: Reporter, budget: int,
              cost: CostMeter, clock: dict, send, history: list[dict]) -> FlowResult:
    """The dense reference trial: the run a ticket replaces, in the same search (cost 1.0, time 1.0)."""
    val = math.nan

    def report(step: int, logs: dict) -> None:
        nonlocal val
        clock["seconds"] = time.perf_counter() - start - clock["eval"]
        clock["dense_step_s"] = clock["seconds"] / step
        metrics = {"phase": "baseline", "step": step, "loss": logs["loss"], "lr": logs["lr"], "done": False}
        if cfg.eval_interval and step % cfg.eval_interval == 0 and step < budget:
            t0 = time.perf_counter()
            _, val = validation(cfg, model, eval_loader)
            clock["eval"] += time.perf_counter() - t0
            metrics.update(ticket_step=step, val_metric=val)
        send(metrics)

    wrapped = reporter.prepare_model(model, find_unused=False)
    start = time.perf_counter()
    result = train(wrapped, train_loader, TrainConfig(lr=cfg.lr, max_steps=budget, seed=cfg.seed,
                                                      warmup_ratio=cfg.warmup_ratio, progress=False,
                                                      precision=cfg.precision, **cfg.compile_args()),
                   [cost, Every([cfg.mask_interval, cfg.eval_interval], report)])
    train_seconds = result.seconds - clock["eval"]
    clock.update(seconds=train_seconds, dense_step_s=train_seconds / result.steps)
    eval_start = time.perf_counter()
    metric_name, val = validation(cfg, model, eval_loader)
    seconds = {"ticket": train_seconds, "eval_during": clock["eval"], "eval": time.perf_counter() - eval_start}
    send({"phase": "done", "step": result.steps, "ticket_step": result.steps, "val_metric": val, "converged": False,
          "early_bird": False, "early_bird_step": -1, "search_steps": 0, "done": True},
         checkpoint_dir=finished_checkpoint(reporter))
    return FlowResult(val, metric_name, False, None, 0, result.steps, cost.flops / (cost.dense * budget), seconds,
                      None, history)


def _reseed(loader: Any, seed: int) -> None:
    generator = getattr(loader, "generator", None)
    if isinstance(generator, torch.Generator):
        generator.manual_seed(seed)


def _batches_per_epoch(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:  # a streamed corpus has no length
        return None


def validation_name(cfg: FlowConfig) -> str:
    return cfg.task_obj.main_metric
