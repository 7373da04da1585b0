"""Ray search overhead: the same K trial configs run by the Ray search vs one plain Optuna process.

Both sides call the same training function (`trainables.flow.run_flow`; the plain side with a
`LocalReporter`) on the same K configs, sampled once up front from a seeded Optuna TPE over head_ratio,
ffn_ratio, λs and ε. The plain side is `optuna.create_study().optimize(...)` in this process. The Ray side
is `searcher.search.run_search` with a define-by-run function that replays the K configs, once per Ray
mode (executor, trials at once). Ratio = Ray wall time (ray.init .. shutdown included) / plain wall time.
Target: <= 1.15 for ~60 s trials (`--size full`: MiniLM on SST-2, 20 + 20 steps, ~60 s on one core).

Each side runs in a fresh Python process, timed from the interpreter's start (imports included). Also
reported per mode: ray.init, Tune's fit alone, and the trial start-up (trial start -> first report, minus
the same on the plain side).

    python scripts/bench/search_overhead.py --size tiny                      # a minute or two
    python scripts/bench/search_overhead.py --size full --trials 4 --json bench_overhead.json

Time here: ~20 min for --size full --trials 4 (five processes, 1,218 s in bench/overhead.json); --size tiny a
minute or two
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "disabled")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms
from benchkit.replay import Replay, sample_configs

SIZES = {
    # a few seconds per trial on one core: a smoke run of the whole benchmark
    "tiny": {
        "task": "sst2",
        "scratch": {"layers": 2, "heads": 4, "hidden": 64, "ffn": 128, "tokenizer": "minilm-l6"},
        "max_train_samples": 256,
        "max_eval_samples": 64,
        "max_length": 32,
        "batch_size": 16,
        "lr": 1e-3,
        "search_max_steps": 60,
        "mask_interval": 5,
        "window": 3,
        "ticket_steps": 20,
        "min_ffn": 4,
        "unconverged": "ticket",
    },
    # ~60 s per trial on one core of the 2-core dev machine (1.4 s per search step, 1 s per ticket step,
    # 9 s for the 872-row dev set)
    "full": {
        "task": "sst2",
        "model": "minilm-l6",
        "max_train_samples": 2000,
        "max_eval_samples": 872,
        "max_length": 64,
        "batch_size": 32,
        "lr": 1e-4,
        "search_max_steps": 20,
        "mask_interval": 5,
        "window": 4,
        "ticket_steps": 20,
        "unconverged": "ticket",
    },
}
MODES = {  # name -> (executor, max_concurrent, cpus_per_worker); "seq1" = what the plain process does
    "inline-seq1": ("inline", 1, 1.0),  # one trial at a time, one thread: the pure per-trial overhead
    "inline-auto": ("inline", None, None),  # the default plan (2 CPUs: two trials at once, one thread each)
    "inline-seq": ("inline", 1, None),  # one trial at a time with every CPU
    "train-seq1": ("train", 1, 1.0),  # Ray Train worker group per trial, one at a time, one thread
    "train-overlap": ("train", None, None),  # default train plan: two at once, start-ups overlap training
    "train-seq": ("train", 1, None),
}


class TimedReporter:
    def __init__(self):
        from tickettune.trainables.reporter import LocalReporter

        self.inner = LocalReporter(verbose=False)
        self.rank, self.world_size = 0, 1
        self.first = None

    def report(self, metrics, checkpoint_dir=None):
        if self.first is None:
            self.first = time.perf_counter()
        self.inner.report(metrics, checkpoint_dir)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def run_plain(configs: list[dict], threads: int) -> dict:
    import optuna
    import torch

    from tickettune.trainables.config import FlowConfig
    from tickettune.trainables.flow import run_flow

    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    per_trial, first_report = [], []

    def objective(trial):
        start = time.perf_counter()
        rep = TimedReporter()
        res = run_flow(FlowConfig.from_dict(configs[trial.number]), rep)
        per_trial.append(time.perf_counter() - start)
        first_report.append(rep.first - start)
        return res.val_metric

    t0 = time.perf_counter()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=len(configs))
    wall = time.perf_counter() - t0
    return {
        "mode": "plain-optuna",
        "executor": "-",
        "concurrent": 1,
        "threads": threads,
        "wall_s": wall,
        "search_s": wall,
        "trial_s": per_trial,
        "first_report_s": first_report,
        "values": [t.value for t in study.trials],
    }


def run_ray(mode: str, configs: list[dict], root: Path, num_cpus: int | None) -> dict:
    from tickettune.searcher.export import load_trials
    from tickettune.searcher.search import run_search

    executor, conc, cpus = MODES[mode]
    spec = {
        "name": f"overhead-{mode}",
        "storage": str(root),
        "search": {
            "num_samples": len(configs),
            "seed": 0,
            "scheduler": "none",
            "max_failures": 0,
            "max_concurrent": conc,
            "cpus_per_worker": cpus,
        },
        "fixed": {"task": configs[0]["task"]},
        "space": {"head_ratio": {"low": 0.2, "high": 0.5}},
    }
    t0 = time.perf_counter()
    res = run_search(spec, num_cpus=num_cpus, executor=executor, space=Replay(configs), export=False, verbose=0)
    wall = time.perf_counter() - t0
    trials = load_trials(root / f"overhead-{mode}")
    first = [t.history[0]["time_total_s"] for t in trials if t.history]  # trial start -> first report
    trial_s = [t.last.get("time_total_s", float("nan")) for t in trials]
    return {
        "mode": mode,
        "executor": executor,
        "concurrent": res.plan["max_concurrent_trials"],
        "threads": res.plan["torch_threads"],
        "wall_s": wall,
        "search_s": res.seconds,
        "trial_s": trial_s,
        "timings": res.timings,
        "first_report_s": first,
        "statuses": res.statuses,
        "values": [t.metric("val_metric") for t in trials],
    }


def child(args: argparse.Namespace) -> None:
    configs = json.loads(Path(args.configs).read_text())
    if args.child == "plain":
        row = run_plain(configs, args.threads)
    else:
        row = run_ray(args.mode, configs, Path(args.root), args.num_cpus)
    Path(args.out).write_text(json.dumps(row, default=str))


def in_fresh_process(argv: list[str], out: Path) -> dict:
    """Run one side in a new Python process; its wall time counts from the interpreter's start (imports
    included, as for someone running the search or the plain script)."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, __file__, *argv, "--out", str(out)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{argv} failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}")
    row = json.loads(out.read_text())
    row["process_s"] = wall
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", choices=sorted(SIZES), default="tiny")
    p.add_argument("--trials", type=int, default=4)
    p.add_argument(
        "--modes",
        default="inline-seq1,inline-auto,train-seq1,train-overlap",
        help=f"comma-separated, from {list(MODES)}",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of the plain process (1: what one Ray trial of two at once gets; "
        "on a busy 2-core box 2 threads run several times slower)",
    )
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    p.add_argument("--child", choices=["plain", "ray"], help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--configs", help=argparse.SUPPRESS)
    p.add_argument("--root", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    configs = sample_configs(args.trials, args.seed, SIZES[args.size])
    root = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    cfg_file = root / "configs.json"
    cfg_file.write_text(json.dumps(configs))
    rows = []
    try:
        print(f"plain Optuna, {args.trials} trials, {args.threads} thread(s) ...", flush=True)
        rows.append(
            in_fresh_process(
                ["--child", "plain", "--configs", str(cfg_file), "--threads", str(args.threads)], root / "plain.json"
            )
        )
        for mode in [m for m in args.modes.split(",") if m]:
            print(f"Ray search, mode {mode} ...", flush=True)
            extra = ["--num-cpus", str(args.num_cpus)] if args.num_cpus else []
            rows.append(
                in_fresh_process(
                    ["--child", "ray", "--mode", mode, "--configs", str(cfg_file), "--root", str(root), *extra],
                    root / f"{mode}.json",
                )
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base = rows[0]
    plain_first = statistics.mean(base["first_report_s"])
    print()
    print(
        f"{'mode':<14} {'exec':<7} {'conc':>4} {'thr':>3} {'process s':>9} {'ratio':>6} {'ray.init s':>10} "
        f"{'fit s':>7} {'per trial s':>11} {'first report s':>14} {'start-up s':>10}"
    )
    for r in rows:
        r["ratio"] = r["process_s"] / base["process_s"]
        r["startup_s"] = statistics.mean(r["first_report_s"]) - plain_first if r["first_report_s"] else None
        t = r.get("timings", {})
        print(
            f"{r['mode']:<14} {r['executor']:<7} {r['concurrent']:>4} {r['threads']:>3} {r['process_s']:>9.1f} "
            f"{r['ratio']:>6.2f} {t.get('connect', 0):>10.1f} {t.get('fit', r['search_s']):>7.1f} "
            f"{statistics.mean(r['trial_s']):>11.1f} {statistics.mean(r['first_report_s']):>14.1f} "
            f"{r['startup_s'] if r['startup_s'] is not None else float('nan'):>10.1f}"
        )
    print(
        f"\nK={args.trials} trials of size {args.size}; plain trial mean {statistics.mean(base['trial_s']):.1f} s; "
        f"target: ratio <= 1.15 for ~60 s trials. Machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}."
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "size": args.size,
                    "trials": args.trials,
                    "configs": configs,
                    "rows": rows,
                    "cpus": os.cpu_count(),
                    "loadavg": os.getloadavg(),
                },
                f,
                indent=1,
                default=str,
            )


if __name__ == "__main__":
    sys.exit(main())
