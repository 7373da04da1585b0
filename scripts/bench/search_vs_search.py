#!/usr/bin/env python
"""Does the search pay? tickettune's search against `Trainer.hyperparameter_search(backend="optuna")`, same
trials, same machine, one after the other.

Per task and seed, two searches of N trials each (Optuna TPE, seeded alike: `optuna_space.sampler_settings`):
* ``hf``         — HF `Trainer.hyperparameter_search` over learning_rate (log 2e-5..2e-4) and warm-up (0..0.2),
  dense, length-grouped batches, precision as tickettune's `auto` (bf16 where fast), plain Trainer unless
  --hf-compile (scripts/benchkit/hf_search.py).
* ``tickettune`` — `run_search` (what `tickettune search` runs) on a generated config: the same lr and
  warm-up plus ticket_mode, ticket_lr (rewind only), head_ratio, ffn_ratio, eps and the fast path's
  embeddings (train | freeze) and dropout (0 | 0.1); multi-objective (dev
  metric max, relative_time min), `baseline: true` (trial 0: the dense run, +1 trial), `enqueue`: the
  paper's point (lr 1e-4) and a conservative one (lr 5e-5, prune less), warm-up 0.1 (the HF search gets the same two
  lr/warm-up points enqueued, unless --no-hf-enqueue).
Every trial has the budget of one dense fine-tune: CoLA its whole train split for 3 epochs, SST-2 a seeded
20,000-row subset for 1 epoch, scored on the whole dev split; batch 32, max_length 64, eval at the end.

Concurrency (--concurrency): 1 (default) runs both searches one trial at a time on every core (tickettune
`max_concurrent: 1` with `cpus_per_worker` = --threads; HF one process). 2 runs two trials at a time, one
core each (tickettune as `make demo` does; HF as two processes on one Optuna journal study, each with its own
Trainer and sampler seed+k: HF's own `n_jobs` would train two trials on one shared Trainer from two threads).

Wall-clock: a search's is the whole call (tickettune: Ray start to shutdown, every trial loading its model
and data; HF: data, every trial's model load, training and dev evaluation). A trial's is its training time
(tickettune `train_seconds`: search phase + ticket training; HF: Trainer.train), evaluations excluded.

    python scripts/bench/search_vs_search.py --json bench/search_vs_search.json --plot-dir bench   # hours
    python scripts/bench/search_vs_search.py --smoke --json /tmp/svs.json --plot-dir /tmp           # < 90 s

Time here: ~1.8 h for `make bench-search` (its four searches: 6,479 s in bench/search_vs_search.json); --smoke < 90 s
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms

from benchkit.hf_search import HFRecipe, hf_search
from benchkit.search_compare import compare, plot_task

EPOCHS = {"cola": 3.0, "sst2": 1.0}
TRAIN_SAMPLES = {"cola": None, "sst2": 20000}  # None: the whole train split
TOLERANCE_PT = {"cola": 1.5, "sst2": 0.5}  # "as good as HF's best", in metric points
LR, WARMUP = (2e-5, 2e-4), (0.0, 0.2)
# EarlyBERT's paper point (4 of 12 heads and 40% of the FFN pruned, eps 0.1, rewind) and a conservative one
# (prune less, keep training the searched weights): the sampler's first two trials after the baseline
PAPER = {
    "lr": 1e-4,
    "warmup_ratio": 0.1,
    "ticket_mode": "rewind",
    "ticket_lr": 1e-4,
    "head_ratio": 1 / 3,
    "ffn_ratio": 0.4,
    "eps": 0.1,
    "embeddings": "train",
    "dropout": 0.1,
}
CONSERVATIVE = {
    "lr": 5e-5,
    "warmup_ratio": 0.1,
    "ticket_mode": "continue",
    "head_ratio": 0.25,
    "ffn_ratio": 0.3,
    "eps": 0.1,
}
SMOKE = {
    "train_samples": 128,
    "eval_samples": 64,
    "max_length": 32,
    "epochs": 1.0,
    "trials": 2,
    "search_max_steps": 2,
    "mask_interval": 1,
    "window": 2,
}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="cola,sst2")
    ap.add_argument("--trials", type=int, default=8, help="N trials per search (tickettune: + its baseline)")
    ap.add_argument("--seeds", type=int, default=1, help="whole comparisons, seeds 0..S-1 (sampler and data)")
    ap.add_argument("--concurrency", type=int, default=1, choices=(1, 2), help="trials at a time, both searches")
    ap.add_argument("--threads", type=int, default=2, help="cores in all")
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--hf-compile", action="store_true", help="TrainingArguments(torch_compile=True)")
    ap.add_argument(
        "--no-hf-enqueue",
        dest="hf_enqueue",
        action="store_false",
        help="HF samples every trial (default: it first tries the lr/warm-up of tickettune's points)",
    )
    ap.add_argument("--storage", default=None, help="tickettune experiments here (default: a temp folder)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot-dir", type=Path, default=None, help="search_vs_search_<task>.png here")
    ap.add_argument("--smoke", action="store_true", help=f"tiny subsets, {SMOKE['trials']} trials: < 90 s")
    args = ap.parse_args(argv)
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    bad = [t for t in args.tasks if t not in EPOCHS]
    if bad:
        ap.error(f"--tasks: {bad} not among {list(EPOCHS)}")
    if args.smoke:
        args.trials = SMOKE["trials"]
    if args.concurrency > args.trials or args.threads % args.concurrency:
        ap.error(f"--concurrency {args.concurrency} needs --trials >= it and --threads divisible by it")
    return args


def sizes(args, task: str) -> dict:
    if args.smoke:
        return {k: SMOKE[k] for k in ("train_samples", "eval_samples", "max_length", "epochs")}
    return {"train_samples": TRAIN_SAMPLES[task], "eval_samples": None, "max_length": 64, "epochs": EPOCHS[task]}


def tickettune_config(args, task: str, seed: int, storage: str) -> dict:
    """The search config (what a user would write as YAML) for one task and seed."""
    s = sizes(args, task)
    small = SMOKE if args.smoke else {"search_max_steps": 400, "mask_interval": 10, "window": 4}
    return {
        "name": f"svs-{task}-seed{seed}",
        "storage": storage,
        "search": {
            "num_samples": args.trials,
            "objective": "multi",
            "metric": ["val_metric", "relative_time"],
            "seed": seed,
            "scheduler": "none",
            "baseline": True,
            "max_failures": 1,
            "max_concurrent": args.concurrency,
            "cpus_per_worker": args.threads // args.concurrency,
            "enqueue": [PAPER, CONSERVATIVE][: args.trials],
        },
        "fixed": {
            "model": args.model,
            "task": task,
            "data_root": args.data_root,
            "seed": seed,
            "max_train_samples": s["train_samples"],
            "max_eval_samples": s["eval_samples"],
            "max_length": s["max_length"],
            "batch_size": 32,
            "budget_epochs": s["epochs"],
            "coef_lr": 1e-2,
            "search_max_steps": small["search_max_steps"],
            "mask_interval": small["mask_interval"],
            "window": small["window"],
            "unconverged": "ticket",
            "precision": "auto",
        },
        "space": {
            "lr": {"low": LR[0], "high": LR[1], "log": True},
            "warmup_ratio": {"low": WARMUP[0], "high": WARMUP[1]},
            "ticket_mode": {"choices": ["rewind", "continue"]},
            "ticket_lr": {"low": LR[0], "high": LR[1], "log": True, "when": {"ticket_mode": "rewind"}},
            "head_ratio": {"low": 0.25, "high": 0.6},
            "ffn_ratio": {"low": 0.3, "high": 0.7},
            "eps": {"low": 0.1, "high": 0.3},
            # the fast path's levers (README "The fast path"): a frozen word embedding, no dropout
            "embeddings": {"choices": ["train", "freeze"]},
            "dropout": {"choices": [0.0, 0.1]},
        },
    }


def run_tickettune(args, task: str, seed: int, storage: str) -> tuple[dict, object]:
    from tickettune.searcher.export import load_trials
    from tickettune.searcher.search import run_search
    from tickettune.spaces import load_spec

    config = tickettune_config(args, task, seed, storage)
    if config["fixed"]["data_root"] is None:
        del config["fixed"]["data_root"]
    spec = load_spec(config)  # every problem of the config before anything starts
    res = run_search(spec, num_cpus=args.threads, overwrite=True, verbose=0)
    trials = []
    for t in load_trials(res.experiment_dir):
        trials.append(
            {
                "trial_id": t.trial_id,
                "baseline": t.is_baseline,
                "status": t.status,
                "params": {k: t.config.get(k) for k in spec.space if k in t.config},
                "metric": t.metric("val_metric"),
                "train_seconds": t.metric("train_seconds"),
                "relative_time": t.metric("relative_time"),
                "relative_cost": t.metric("relative_cost"),
                "converged": t.last.get("converged"),
                "error": t.error,
            }
        )
    return {
        "seconds": res.seconds,
        "timings": res.timings,
        "statuses": res.statuses,
        "finished": res.finished,
        "experiment_dir": res.experiment_dir,
        "config": spec.to_dict(),
        "trials": trials,
    }, spec


def run_hf(args, task: str, seed: int, spec) -> dict:
    from tickettune.spaces.optuna_space import sampler_settings

    s = sizes(args, task)
    recipe = HFRecipe(
        model=args.model,
        task=task,
        epochs=s["epochs"],
        data_root=args.data_root,
        train_samples=s["train_samples"],
        eval_samples=s["eval_samples"],
        max_length=s["max_length"],
        seed=seed,
        compile=args.hf_compile,
        threads=args.threads // args.concurrency,
        lr_range=LR,
        warmup_range=WARMUP,
        sampler=sampler_settings(spec),
    )
    points = [{"learning_rate": p["lr"], "warmup_ratio": p["warmup_ratio"]} for p in (PAPER, CONSERVATIVE)]
    enqueue = list({json.dumps(p): p for p in points}.values())[: args.trials] if args.hf_enqueue else None
    return hf_search(recipe, args.trials, enqueue=enqueue, jobs=args.concurrency)


def machine() -> dict:
    import torch

    from tickettune.trainables.training.precision import Precision

    info = {
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "precision_auto": Precision.of("auto", "cuda" if torch.cuda.is_available() else "cpu").name,
    }
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        flags = set(fields.get("Flags", "").split())
        info["cpu"] = fields.get("Model name", "").strip()
        info["flags"] = sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni"})
    except (OSError, subprocess.CalledProcessError):
        info["cpu"] = None
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def headline(tasks: dict) -> list[dict]:
    """One entry per task, averaged over seeds (the issue's definitions; see _search_compare.compare)."""
    out = []
    for task, t in tasks.items():
        cs = [r["comparison"] for r in t["runs"]]
        entry = {"task": task}
        for k in ("wall_ratio", "best_diff_pt", "fast_time_ratio", "fast_diff_pt"):
            vals = [c[k] for c in cs if c[k] is not None and math.isfinite(c[k])]
            entry[k] = statistics.median(vals) if vals else None
        entry["seeds"] = len(cs)
        entry["fast_found"] = sum(c["fast_trial"] is not None for c in cs)
        out.append(entry)
    return out


def run(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    out = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine(),
        "tolerance_pt": TOLERANCE_PT,
        "tasks": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        storage = args.storage or tmp
        for task in args.tasks:
            runs = []
            for seed in range(args.seeds):
                print(f"[{task} seed {seed}] tickettune search ...", flush=True)
                tt, spec = run_tickettune(args, task, seed, storage)
                print(f"  {tt['seconds']:.0f} s, {tt['statuses']}", flush=True)
                print(f"[{task} seed {seed}] HF Trainer.hyperparameter_search ...", flush=True)
                hf = run_hf(args, task, seed, spec)
                print(f"  {hf['seconds']:.0f} s", flush=True)
                runs.append(
                    {"seed": seed, "hf": hf, "tickettune": tt, "comparison": compare(hf, tt, TOLERANCE_PT[task])}
                )
            out["tasks"][task] = {
                "metric": _metric_name(task),
                "sizes": sizes(args, task),
                "runs": runs,
                "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            if args.plot_dir:
                args.plot_dir.mkdir(parents=True, exist_ok=True)
                out["tasks"][task]["plot"] = str(
                    plot_task(
                        task, out["tasks"][task], TOLERANCE_PT[task], args.plot_dir / f"search_vs_search_{task}.png"
                    )
                )
    out["headline"] = headline(out["tasks"])
    return out


def _metric_name(task: str) -> str:
    from tickettune.trainables.tasks import get_task

    return get_task(task).main_metric


def print_table(res: dict) -> None:
    for task, t in res["tasks"].items():
        for r in t["runs"]:
            c = r["comparison"]
            print(
                f"{task} seed {r['seed']} ({t['metric']}): search wall-clock HF {c['hf_seconds']:.0f} s, "
                f"tickettune {c['tickettune_seconds']:.0f} s (ratio {c['wall_ratio']:.3f}); best HF "
                f"{c['hf_best']:.4f}, tickettune {c['tickettune_best']:.4f} ({c['best_diff_pt']:+.2f} pt)"
            )
            f = c["fast_trial"]
            print(
                "  fastest ticket within tolerance: "
                + (
                    f"{f['trial_id']} at {c['fast_time_ratio']:.3f} of a dense HF trial, {c['fast_diff_pt']:+.2f} pt"
                    if f
                    else "none"
                )
            )
    for h in res["headline"]:
        print("headline " + json.dumps(h))


def finish(res: dict, path: Path | None) -> dict:
    print_table(res)
    if path:
        if path.exists():  # tasks measured by an earlier run into the same file are kept, not overwritten
            earlier = json.loads(path.read_text()).get("tasks", {})
            res["tasks"] = {**{t: v for t, v in earlier.items() if t not in res["tasks"]}, **res["tasks"]}
            res["headline"] = headline(res["tasks"])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(res, indent=2, default=str))
        os.replace(tmp, path)
    return res


def main(argv=None) -> dict:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parse_args(argv)
    return finish(run(args), args.json)


if __name__ == "__main__":
    main()
