#!/usr/bin/env python
"""Does the search pay? tickettune's search against `Trainer.hyperparameter_search(backend="optuna")`, same
trials, same machine, one after the other.

Per task and seed, two searches of N trials each (Optuna TPE, seeded alike: `optuna_space.sampler_settings`):
* ``hf``         — HF `Trainer.hyperparameter_search` over learning_rate (log 2e-5..2e-4) and warm-up (0..0.2),
  dense, length-grouped batches, precision as tickettune's `auto` (bf16 where fast), plain Trainer unless
  --hf-compile (scripts/benchkit/hf_search.py).
* ``hf_pruned``  — the same HF search at its strongest: Optuna's `MedianPruner` (passed through
  `hyperparameter_search` to `optuna.create_study`), the trials evaluated every --first-rung of their steps
  (a quarter by default), where tickettune's ASHA judges (hf_search.py `rung_grace`), so that trials behind the
  median stop (--no-hf-pruned: not run).
* ``tickettune`` — `run_search` (what `tickettune search` runs) on a generated config: the same lr and
  warm-up plus ticket_mode, ticket_lr (rewind only), head_ratio, ffn_ratio, eps and the fast path's
  embeddings (train | freeze) and dropout (0 | 0.1); multi-objective (dev
  metric max, relative_time min), `baseline: true` (trial 0: the dense run, +1 trial), `enqueue`: the
  paper's ratios (lr 1e-4, `continue`) and a conservative one (lr 5e-5, prune less), warm-up 0.1 (the HF
  search gets the same two lr/warm-up points enqueued, unless --no-hf-enqueue), then the dense model with the
  fast path's levers (ratios 0, its lr sampled). The ratios range from 0 (dense) through light tickets (~0.1)
  to 0.6 / 0.7.
  `--scheduler asha` (default): ASHA stops trials behind at its rungs (searcher/scheduling.py `asha_rungs`),
  on the dev metric, or on the dev loss with `--rung-metric val_loss`; --first-rung and --reduction-factor place
  them (search.first_rung, search.reduction_factor). --hf-from takes the HF arms from an earlier run's JSON
  instead of running them (recorded as `hf_from`: an across-runs comparison; --rerun-hf-pruned runs that arm).
Every trial has the budget of one dense fine-tune: CoLA its whole train split for 3 epochs, SST-2 a seeded
20,000-row subset for 1 epoch (tickettune: `budget_steps`, counted from the same loader, so that ASHA's max_t is
known), scored on the whole dev split; batch 32, max_length 64.

The tax, like for like (benchkit/concurrent_arms.py, as scripts/bench/concurrent_step.py; --no-tax: not run): per
task, before the searches, tickettune's dense trial on the plain path against HF's trial step, two at a time,
--tax-steps steps each: `dense_step_ratio` in the headline.

Concurrency (--concurrency): 1 (default) runs the searches one trial at a time on every core (tickettune
`max_concurrent: 1`, `cpus_per_worker` = --threads; HF one process). 2: two trials at a time, one core each
(tickettune as `make demo` does; HF as two processes on one Optuna journal study, each with its own Trainer and
sampler seed+k: HF's own `n_jobs` would train two trials on one shared Trainer from two threads).

Wall-clock: a search's is the whole call (tickettune: Ray start to shutdown, every trial loading its model
and data; HF: data, every trial's model load, training and dev evaluation). A trial's is its training time
(tickettune `train_seconds`: search phase + ticket training; HF: Trainer.train), evaluations excluded.

    python scripts/bench/search_vs_search.py --json bench/search_vs_search.json --plot-dir bench   # hours
    python scripts/bench/search_vs_search.py --smoke --json /tmp/svs.json --plot-dir /tmp           # minutes

Time here: CoLA alone ~2 h 10 min (2026-12-07, fp32 AVX2: the tax 6 min, tickettune 2,321 s, HF 3,033 s, HF +
MedianPruner 2,009 s); SST-2 ~2 h 5 min (tickettune 1,870 s, HF 3,009 s, HF + MedianPruner 1,954 s); CoLA with
--hf-from, --rerun-hf-pruned, --first-rung 0.125 ~57 min (tickettune 1,457 s, HF + MedianPruner 1,897 s), SST-2 so
~62 min (tickettune 1,789 s, HF + MedianPruner 1,549 s); --smoke ~3 min
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms

from benchkit.bench import machine
from benchkit.concurrent_arms import measure_task
from benchkit.hf_search import HFRecipe, hf_search
from benchkit.search_compare import compare, earlier_hf, headline, plot_task, print_table

EPOCHS = {"cola": 3.0, "sst2": 1.0}
TRAIN_SAMPLES = {"cola": None, "sst2": 20000}  # None: the whole train split
TOLERANCE_PT = {"cola": 1.5, "sst2": 0.5}  # "as good as HF's best", in metric points
LR, WARMUP = (2e-5, 2e-4), (0.0, 0.2)
# EarlyBERT's paper point (4 of 12 heads and 40% of the FFN pruned, eps 0.1) and a conservative one (prune
# less): with DENSE, the first trials after the baseline. Both `continue` (tickettune's default): the paper's
# `rewind` retrains the whole budget after the search phase, so at ASHA's rungs (the trial's steps) it is always
# behind by its search phase; the sampler still draws rewind points.
PAPER = {
    "lr": 1e-4,
    "warmup_ratio": 0.1,
    "ticket_mode": "continue",
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
# the dense model as a point of the space: ratio 0 prunes nothing (its search phase ends at its first early-bird
# window; the whole model trains the rest of the budget, its ticket exportable), on the fast path's levers; lr and
# warm-up are the sampler's. The baseline trial stays the fixed-lr reference for relative_time.
DENSE = {"ticket_mode": "continue", "head_ratio": 0.0, "ffn_ratio": 0.0, "embeddings": "freeze", "dropout": 0.0}
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
    ap.add_argument("--scheduler", default="asha", choices=("asha", "none"), help="tickettune's search.scheduler")
    ap.add_argument("--rung-metric", default=None, choices=("val_loss",), help="ASHA's rungs on the dev loss")
    ap.add_argument("--first-rung", type=float, default=0.25, help="ASHA's first rung, HF's evaluations (a fraction)")
    ap.add_argument("--reduction-factor", type=int, default=2, help="ASHA's reduction factor")
    ap.add_argument("--hf-from", type=Path, default=None, help="the HF arms from this earlier JSON (see above)")
    ap.add_argument("--rerun-hf-pruned", action="store_true", help="with --hf-from: run HF + MedianPruner here")
    ap.add_argument("--no-hf-pruned", dest="hf_pruned", action="store_false", help="no HF search with a MedianPruner")
    ap.add_argument(
        "--pruner-startup",
        type=int,
        default=2,
        help="MedianPruner n_startup_trials: trials that finish before it prunes (Optuna's default 5)",
    )
    ap.add_argument("--no-tax", dest="tax", action="store_false", help="no dense_step_ratio measurement")
    ap.add_argument("--tax-steps", type=int, default=100, help="steps per run of the tax measurement")
    ap.add_argument("--storage", default=None, help="tickettune experiments here (default: a temp folder)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot-dir", type=Path, default=None, help="search_vs_search_<task>.png here")
    ap.add_argument("--smoke", action="store_true", help=f"tiny subsets, {SMOKE['trials']} trials: minutes")
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


def dense_steps(args, task: str) -> int:
    """Optimizer steps of one dense fine-tune of the budget (the flow's own count: tickettune's train loader)."""
    from tickettune.trainables.budget import budget_steps
    from tickettune.trainables.config import FlowConfig
    from tickettune.trainables.tasks.data import as_tokenizer

    s = sizes(args, task)
    cfg = FlowConfig(
        model=args.model,
        task=task,
        data_root=args.data_root,
        max_train_samples=s["train_samples"],
        max_length=s["max_length"],
        batch_size=32,
        budget_epochs=s["epochs"],
    )
    return budget_steps(cfg, len(cfg.task_obj.train_loader(as_tokenizer(cfg.model), cfg.data_args())))


def tickettune_config(args, task: str, seed: int, storage: str, budget_steps: int | None = None) -> dict:
    """The search config (what a user would write as YAML) for one task and seed; `budget_steps` (what
    `dense_steps` counts) instead of budget_epochs where given: ASHA's max_t must be known before the data is."""
    s = sizes(args, task)
    small = SMOKE if args.smoke else {"search_max_steps": 400, "mask_interval": 10, "window": 4}
    budget = {"budget_epochs": s["epochs"]} if budget_steps is None else {"budget_steps": budget_steps}
    return {
        "name": f"svs-{task}-seed{seed}",
        "storage": storage,
        "search": {
            "num_samples": args.trials,
            "objective": "multi",
            "metric": ["val_metric", "relative_time"],
            "seed": seed,
            "scheduler": args.scheduler,
            "rung_metric": args.rung_metric,
            "first_rung": args.first_rung,
            "reduction_factor": args.reduction_factor,
            "baseline": True,
            "max_failures": 1,
            "max_concurrent": args.concurrency,
            "cpus_per_worker": args.threads // args.concurrency,
            "enqueue": [PAPER, CONSERVATIVE, DENSE][: args.trials],
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
            **budget,
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
            # from 0 (the dense model, DENSE) through light tickets (~0.1) and the paper's (1/3, 0.4) to heavy ones
            "head_ratio": {"low": 0.0, "high": 0.6},
            "ffn_ratio": {"low": 0.0, "high": 0.7},
            "eps": {"low": 0.1, "high": 0.3},
            # the fast path's levers (README "The fast path"): a frozen word embedding, no dropout
            "embeddings": {"choices": ["train", "freeze"]},
            "dropout": {"choices": [0.0, 0.1]},
        },
    }


def run_tickettune(args, task: str, seed: int, storage: str, budget_steps: int | None) -> tuple[dict, object]:
    from tickettune.searcher.export import load_trials
    from tickettune.searcher.search import run_search
    from tickettune.searcher.stops import stopped_trials
    from tickettune.spaces import load_spec

    config = tickettune_config(args, task, seed, storage, budget_steps)
    if config["fixed"]["data_root"] is None:
        del config["fixed"]["data_root"]
    spec = load_spec(config)  # every problem of the config before anything starts
    res = run_search(spec, num_cpus=args.threads, overwrite=True, verbose=0)
    trials, stops = [], stopped_trials(res.experiment_dir)
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
                "stopped": t.trial_id in stops,  # by ASHA: its metric is from a rung (stops.py: which, why)
                "stop": stops.get(t.trial_id),
                "eval_step": t.last.get("eval_step"),  # where it ended: the trial's steps
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


def run_hf(args, task: str, seed: int, spec, pruned: bool = False) -> dict:
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
        pruner={"n_startup_trials": args.pruner_startup, "n_warmup_steps": 0} if pruned else None,
        first_rung=args.first_rung,
    )
    points = [{"learning_rate": p["lr"], "warmup_ratio": p["warmup_ratio"]} for p in (PAPER, CONSERVATIVE)]
    enqueue = list({json.dumps(p): p for p in points}.values())[: args.trials] if args.hf_enqueue else None
    return hf_search(recipe, args.trials, enqueue=enqueue, jobs=args.concurrency)


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
            runs, tax = [], None
            if args.tax:
                print(f"[{task}] the tax: dense trial steps, two at a time ...", flush=True)
                threads = max(1, args.threads // 2)
                tax = measure_task(
                    task, args.model, args.data_root, threads, sizes(args, task), args.tax_steps, args.smoke
                )
                print(f"  dense_step_ratio {tax['dense_step_ratio']}", flush=True)
            budget = dense_steps(args, task)
            for seed in range(args.seeds):
                print(f"[{task} seed {seed}] tickettune search ...", flush=True)
                tt, spec = run_tickettune(args, task, seed, storage, budget)
                print(f"  {tt['seconds']:.0f} s, {tt['statuses']}", flush=True)
                earlier = earlier_hf(args.hf_from, task, seed) if args.hf_from else None
                if earlier:
                    hf, hf_pruned = earlier["hf"], None if args.rerun_hf_pruned else earlier["hf_pruned"]
                    print(f"[{task} seed {seed}] HF searches from {args.hf_from} ({earlier['measured']})", flush=True)
                else:
                    print(f"[{task} seed {seed}] HF Trainer.hyperparameter_search ...", flush=True)
                    hf, hf_pruned = run_hf(args, task, seed, spec), None
                    print(f"  {hf['seconds']:.0f} s", flush=True)
                if args.hf_pruned and hf_pruned is None:
                    print(f"[{task} seed {seed}] HF Trainer.hyperparameter_search + MedianPruner ...", flush=True)
                    hf_pruned = run_hf(args, task, seed, spec, pruned=True)
                    print(f"  {hf_pruned['seconds']:.0f} s, {hf_pruned['pruned']} pruned", flush=True)
                c = compare(hf, tt, TOLERANCE_PT[task], hf_pruned=hf_pruned)
                runs.append({"seed": seed, "hf": hf, "hf_pruned": hf_pruned, "tickettune": tt, "comparison": c})
                if earlier:
                    runs[-1]["hf_from"] = {
                        "path": str(args.hf_from),
                        "measured": earlier["measured"],
                        "cpu": earlier["cpu"],
                        "hf_pruned_first_rung": args.first_rung if args.rerun_hf_pruned else earlier["first_rung"],
                    }
            out["tasks"][task] = {
                "metric": _metric_name(task),
                "sizes": sizes(args, task),
                "budget_steps": budget,
                "tax": tax,
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
