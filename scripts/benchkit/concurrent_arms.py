"""The arms of the tax measurement (scripts/bench/concurrent_step.py; scripts/bench/search_vs_search.py runs it per
task): two training runs side by side, HF's or tickettune's, as plain processes or as trials of a search, each
recording its clock (step_probe.py) while the machine's CPU is sampled (cpu_share.py).

`args` carries: task, model, data_root, steps, threads, report_interval, max_length, batch_size, train_samples
(None: the whole train split), arms (names from ARMS), rounds, and optionally competitor (True: one more process
spins on a core at normal priority during every arm, as a user's other work would)."""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from . import step_probe
from .bench import cpu, hf_training_args, run_all
from .cpu_share import CpuSampler

ARMS = ("hf_process", "tt_process", "tt_thread", "tt_ray", "tt_ray_nodash", "tt_ray_nice15")
# what a Ray arm changes in the environment its local Ray instance starts from
ARM_ENV = {"tt_ray_nice15": {"RAY_worker_niceness": "15"}}  # Ray's own default, before ray_session set 0
SMOKE = {"steps": 12, "report_interval": 2, "max_length": 32, "batch_size": 8, "train_samples": 256}
SEARCH_ARMS = ("hf_process", "tt_process", "tt_ray")  # what the search benchmark measures per task
RATIOS = {  # name: (numerator arm, denominator arm)
    "dense_step_ratio": ("tt_ray", "hf_process"),
    "plain_step_ratio": ("tt_process", "hf_process"),
    "thread_vs_process": ("tt_thread", "tt_process"),
    "ray_vs_process": ("tt_ray", "tt_process"),
    "dashboard_vs_none": ("tt_ray", "tt_ray_nodash"),
    "nice15_vs_nice0": ("tt_ray_nice15", "tt_ray"),
}


def flow_dict(args) -> dict:
    """One dense trial on the plain path, HF's settings: fp32/bf16 as `auto`, the word embedding trained,
    the model's dropout, lr 1e-4 with 10% linear warm-up; evaluated once at the end on a few rows."""
    flow = {
        "model": args.model,
        "task": args.task,
        "max_train_samples": args.train_samples,
        "max_eval_samples": 32,
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "seed": 0,
        "fast_path": False,
        "baseline": True,
        "budget_steps": args.steps,
        "search_max_steps": 1,
        "lr": 1e-4,
        "warmup_ratio": 0.1,
        "report_interval": args.report_interval,
    }
    if args.data_root:
        flow["data_root"] = str(Path(args.data_root).resolve())
    return flow


# ------------------------------------------------------------------------------- the plain-process arms


def hf_worker(flow: dict, threads: int, out: str, barrier) -> None:
    """One HF run: Trainer.train on the flow's own train loader (same batches), marked every report_interval."""
    import torch
    from transformers import AutoModelForSequenceClassification, Trainer

    from tickettune.trainables.config import FlowConfig
    from tickettune.trainables.model.build import model_path
    from tickettune.trainables.tasks.data import as_tokenizer
    from tickettune.trainables.training.precision import Precision

    torch.set_num_threads(threads)
    cfg = FlowConfig.from_dict(flow)
    spec = cfg.task_obj
    loader = spec.train_loader(as_tokenizer(cfg.model), cfg.data_args())
    torch.manual_seed(cfg.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path(cfg.model), attn_implementation="sdpa", num_labels=spec.num_labels
    )
    amp = Precision.of("auto", "cuda" if torch.cuda.is_available() else "cpu")
    log = step_probe.StepLog()

    class SameBatches(Trainer):
        def get_train_dataloader(self):
            return loader

    with tempfile.TemporaryDirectory() as tmp:
        targs = hf_training_args(
            tmp, batch_size=cfg.batch_size, lr=cfg.lr, epochs=1.0, amp=amp, seed=cfg.seed, max_steps=cfg.budget_steps
        )
        trainer = SameBatches(
            model=model,
            args=targs,
            train_dataset=loader.dataset,
            callbacks=[step_probe.hf_step_callback(log, cfg.report_interval)],
        )
        barrier.wait()
        trainer.train()
    log.write(out)


def tt_worker(flow: dict, threads: int, out: str, barrier, in_thread: bool) -> None:
    """One tickettune run: `run_flow` as a trial runs it (torch threads set in the thread that trains)."""
    import torch

    from tickettune.trainables.config import FlowConfig
    from tickettune.trainables.flow import run_flow
    from tickettune.trainables.reporter import LocalReporter

    log = step_probe.StepLog()
    errors: list[BaseException] = []

    def train() -> None:
        try:
            torch.set_num_threads(threads)
            run_flow(FlowConfig.from_dict(flow), step_probe.Recording(LocalReporter(verbose=False), log))
        except BaseException as e:  # noqa: BLE001 - re-raised in the process's main thread
            errors.append(e)

    barrier.wait()
    if in_thread:
        t = threading.Thread(target=train, name="trial")
        t.start()
        t.join()
    else:
        train()
    if errors:
        raise errors[0]
    log.write(out)


def process_arm(arm: str, args, tmp: Path) -> tuple[list[dict], set[int]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    outs = [str(tmp / f"{arm}_{k}.json") for k in range(2)]
    if arm == "hf_process":
        procs = [ctx.Process(target=hf_worker, args=(flow_dict(args), args.threads, o, barrier)) for o in outs]
    else:
        in_thread = arm == "tt_thread"
        procs = [
            ctx.Process(target=tt_worker, args=(flow_dict(args), args.threads, o, barrier, in_thread)) for o in outs
        ]
    run_all(procs, f"{arm}: worker")
    return [json.loads(Path(o).read_text()) for o in outs], {p.pid for p in procs}


# ------------------------------------------------------------------------------------------ the Ray arms


def ray_config(arm: str, args, storage: Path) -> dict:
    """The search config of a Ray arm: the two dense trials and nothing to sample, both at once."""
    search = {"num_samples": 2, "scheduler": "none", "metric": "val_metric", "max_concurrent": 2}
    search.update(cpus_per_worker=args.threads, max_failures=0)
    return {"name": arm, "storage": str(storage), "search": search, "fixed": flow_dict(args), "space": {}}


def ray_arm(arm: str, args, tmp: Path) -> tuple[list[dict], set[int]]:
    """Two dense trials through `run_search`, two at a time, `probe_flow` recording inside each trial."""
    import ray
    import ray.cloudpickle

    from tickettune.searcher import console, ray_session
    from tickettune.searcher.search import run_search
    from tickettune.spaces import load_spec

    ray.cloudpickle.register_pickle_by_value(step_probe)  # Ray's workers do not have scripts/ on their path
    spec = load_spec(ray_config(arm, args, tmp))
    env = ARM_ENV.get(arm, {})
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    started = False
    if arm == "tt_ray_nodash":  # run_search joins the instance started here (ray_session.connect)
        for k, v in {**ray_session.RAY_ENV_DEFAULTS, **console.worker_env(0)}.items():
            os.environ.setdefault(k, v)
        ray.init(address="local", num_cpus=2 * args.threads, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        res = run_search(
            spec, num_cpus=2 * args.threads, flow_fn=step_probe.probe_flow, export=False, verbose=0, overwrite=True
        )
    finally:
        if started:
            ray.shutdown()
        for k, v in saved.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v
    if res.statuses.get("TERMINATED", 0) != 2:
        raise RuntimeError(f"{arm}: trials ended {res.statuses} (see {res.experiment_dir})")
    runs = [json.loads(p.read_text()) for p in sorted(Path(res.experiment_dir).glob(f"*/{step_probe.PROBE_FILE}"))]
    return runs, {r["facts"]["pid"] for r in runs if r["facts"]}


# ---------------------------------------------------------------------------------------------- the run


def competitor() -> subprocess.Popen:
    """Other work on the host, at the priority of a user's own programs: one process spinning on a core."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def run_arm(arm: str, args, tmp: Path) -> dict:
    start = time.time()
    tmp.mkdir(parents=True, exist_ok=True)
    other = competitor() if getattr(args, "competitor", False) else None
    try:
        with CpuSampler() as sampler:
            runs, pids = (ray_arm if arm.startswith("tt_ray") else process_arm)(arm, args, tmp)
    finally:
        if other is not None:
            other.kill()
            other.wait()
    recs = [r["records"] for r in runs]
    lo, hi = step_probe.overlap(recs)
    return {
        "records": recs,
        "runs": [{"facts": r["facts"], "thread_cpu_s": dict(list(r["thread_cpu_s"].items())[:8])} for r in runs],
        "cpu_share": sampler.share(lo, hi, pids),
        "seconds": time.time() - start,
    }


def summarise(arm_rounds: list[dict]) -> dict:
    """One arm over its rounds: medians over the windows of every round, and per starting step (`by_start`) the
    means that the ratios match between arms."""
    stats: dict = {"windows": 0, "steps": 0}
    pooled = [w for r in arm_rounds for w in step_probe.windows(r["records"])]
    for k in ("wall_ms", "cpu_ms", "thread_cpu_ms"):
        stats[k] = statistics.median(w[k] for w in pooled) if pooled else None
    stats["windows"], stats["steps"] = len(pooled), sum(w["steps"] for w in pooled)
    stats["by_start"] = step_probe.by_start(pooled)
    stats["rounds"] = [{**r, "window_ms": _window_ms(r["records"])} for r in arm_rounds]
    return stats


def _window_ms(records: list[list[dict]]) -> list[list]:
    """Every counted window as [run, starting step, wall ms, thread CPU ms] per step, in order."""
    return [
        [w["run"], w["start"], round(w["wall_ms"], 1), round(w["thread_cpu_ms"], 1)]
        for w in step_probe.windows(records)
    ]


def ratios(arms: dict) -> dict:
    """Each RATIOS pair in wall-clock per step, and (``<name>_cpu``) in the training thread's CPU per step: the
    median over the windows both arms timed (step_probe.matched_ratio)."""
    out = {}
    for name, (num, den) in RATIOS.items():
        a, b = arms.get(num, {}).get("by_start"), arms.get(den, {}).get("by_start")
        for suffix, key in (("", "wall_ms"), ("_cpu", "thread_cpu_ms")):
            out[name + suffix] = step_probe.matched_ratio(a, b, key) if a and b else None
    return out


def measure(args) -> dict:
    import torch

    from tickettune.trainables.training.precision import Precision

    rounds: dict[str, list[dict]] = {a: [] for a in args.arms}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = args.arms if r % 2 == 0 else args.arms[::-1]
            for arm in order:
                print(f"  round {r} {arm} ...", flush=True)
                rounds[arm].append(run_arm(arm, args, Path(tmp) / f"r{r}"))
    res = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {
            **cpu(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "precision_auto": Precision.of("auto", "cuda" if torch.cuda.is_available() else "cpu").name,
        },
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return {**res, **figures(rounds)}


def figures(rounds: dict[str, list[dict]]) -> dict:
    """Every figure of a measurement from what its arms recorded (`run_arm`'s rounds, per arm)."""
    arms = {a: summarise(rs) for a, rs in rounds.items()}
    foreign = [r["cpu_share"]["cores"].get("foreign", 0.0) for a in arms.values() for r in a["rounds"]]
    r = ratios(arms)
    return {
        "foreign_cores_max": max(foreign, default=None),  # other work on the machine while an arm trained
        "arms": arms,
        "ratios": r,
        "dense_step_ratio": r["dense_step_ratio"],
        "dense_step_ratio_cpu": r["dense_step_ratio_cpu"],
    }


def reanalyse(saved: dict) -> dict:
    """A saved measurement with its figures computed again from its records (the statistic changed, not the
    measurement); `reanalysed` says when."""
    keep = ("records", "runs", "cpu_share", "seconds")
    rounds = {a: [{k: r[k] for k in keep} for r in v["rounds"]] for a, v in saved["arms"].items()}
    return {**saved, **figures(rounds), "reanalysed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def measure_task(
    task: str, model: str, data_root: str | None, threads: int, sizes: dict, steps: int, smoke: bool = False
) -> dict:
    """The tax on a search benchmark's task and `sizes` (its max_length and train_samples; search_vs_search.py):
    SEARCH_ARMS, `steps` steps of batch 32 per run, a report every 10; smoke: SMOKE's steps, batch and reports."""
    small = {k: SMOKE[k] for k in ("steps", "report_interval", "batch_size")} if smoke else {}
    return measure(
        SimpleNamespace(
            task=task,
            model=model,
            data_root=data_root,
            threads=threads,
            max_length=sizes["max_length"],
            train_samples=sizes["train_samples"],
            steps=small.get("steps", steps),
            report_interval=small.get("report_interval", 10),
            batch_size=small.get("batch_size", 32),
            arms=list(SEARCH_ARMS),
            rounds=1,
        )
    )
