#!/usr/bin/env python
"""Time to accuracy: tickettune against the dense fine-tuning a user would otherwise run, same machine.

Arms, per task and seed, run one after the other in one process:
* ``trainer``  — HF ``Trainer``, dense, bf16 where the CPU/GPU runs it fast, ``train_sampling_strategy=
  "group_by_length"``, fused AdamW: the user's alternative.
* ``trainer_compile`` — the same with ``torch_compile=True`` (the other switch a user has). Every ratio is
  taken against the faster of the two Trainer arms (per task, by mean total seconds; `reference` names it).
* ``dense``    — tickettune's own loop on the dense model (a `baseline: true` trial of the flow).
* ``rewind``   — EarlyBERT: search phase to the early bird, prune, rewind to pre-trained, train the budget.
* ``continue`` — EarlyBERT: search phase, prune, keep the weights/AdamW moments/schedule, train the rest.
* ``random``   — a ticket of the same per-layer widths as the seed's EarlyBERT ticket, heads and FFN neurons
  drawn at random, no search, trained the whole budget: what the search itself buys.
* ``dense_levers``, ``rewind_levers``, ``continue_levers`` — the same flows with `--levers` set explicitly
  (default bf16-master + frozen word embedding + no dropout: what an unset FlowConfig now picks on a bf16 CPU).
* ``dense_plain``, ``rewind_plain``, ``continue_plain`` — the same flows with `fast_path: false`: autocast,
  a trained word embedding, the model's dropout (the EarlyBERT trial before the fast path became its default).
The flow arms train in the flow's own precision (`trainables/fast_path.py`) unless `--set precision=...`;
`--precision` is the Trainer and random arms'.
Every arm trains the same data (the task's whole train split unless --train-samples), batch 32, max_length 64,
peak lr 1e-4 with 10% warm-up and linear decay, for the task's budget (SST-2: 1 epoch; CoLA: 3), and scores
the dev set every --eval-every steps for a metric-vs-wall-clock curve. Times: `train_seconds` excludes the
dev evaluations; `total_seconds` is the arm's whole fit (search, training, evaluations), model loading and
tokenisation excluded (the same for every arm). Compilation (trainer_compile, tickettune's `compile`) is
inside every time. `--set key=value` (repeatable) overrides FlowConfig fields of the tickettune arms (dense,
rewind, continue; random takes the TrainConfig ones and pad_to_multiple_of), e.g. `--set compile=true
--set pad_to_multiple_of=16`; values are YAML scalars.

    python scripts/bench/time_to_accuracy.py --tasks sst2,cola --seeds 2 --json bench/time_to_accuracy.json \
        --plot bench/time_to_accuracy.png
    python scripts/bench/time_to_accuracy.py --tasks sst2 --seeds 1 --train-samples 640 --eval-every 10  # smoke

Time here: ~1.5 h for `make bench-time` (2 tasks x 2 seeds x 4 arms, bf16 CPU); ≈ 2 h on an fp32-only CPU (README)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from tickettune.trainables.tasks import get_task
from tickettune.trainables.tasks.data import as_tokenizer
from tickettune.trainables.training.precision import Precision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms
from benchkit.bench import finish, parse_sets
from benchkit.curves import plot_curves
from benchkit.flow_arm import arm_flow
from benchkit.random_arm import arm_random
from benchkit.trainer_arm import arm_trainer, loaders

LEVERED = "_levers"  # an arm name's suffix: the flow arm with --levers' overrides on top of --set
PLAIN = "_plain"  # the flow arm with fast_path: false on top of --set
FLOW_ARMS = ("dense", "rewind", "continue")
ARMS = ("trainer", "trainer_compile", *FLOW_ARMS, "random")
ARMS += tuple(a + suffix for suffix in (LEVERED, PLAIN) for a in FLOW_ARMS)
TRAINER_ARMS = ("trainer", "trainer_compile")
EPOCHS = {"sst2": 1.0, "cola": 3.0}
EB_ARMS = tuple(a for a in ARMS if a.startswith(("rewind", "continue")))
DEFAULT_LEVERS = ["precision=bf16-master", "embeddings=freeze", "dropout=0"]


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="sst2,cola")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--train-samples", type=int, default=None, help="default: the whole train split")
    ap.add_argument("--eval-samples", type=int, default=None, help="default: the whole dev split")
    ap.add_argument("--epochs", type=float, default=None, help="default: sst2 1, cola 3")
    ap.add_argument("--eval-every", type=int, default=None, help="default: a tenth of the budget")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--precision", default="auto", help="the Trainer and random arms' (the flow arms: --set)")
    ap.add_argument("--threads", type=int, default=2)
    # EarlyBERT (the settings: coef_lr 1e-2, eps 0.2, window 4, a mask every 10 steps)
    ap.add_argument("--coef-lr", type=float, default=1e-2)
    ap.add_argument("--eps", type=float, default=0.2)
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--mask-interval", type=int, default=10)
    ap.add_argument("--search-max-steps", type=int, default=400)
    ap.add_argument("--head-ratio", type=float, default=1 / 3)
    ap.add_argument("--ffn-ratio", type=float, default=0.4)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument(
        "--no-malloc-tune",
        action="store_true",
        help="leave glibc's allocator as it is (by default it keeps freed memory, for every arm alike: "
        "tickettune's loop does so on CPU, and process-wide, so the Trainer arms get it too)",
    )
    ap.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a FlowConfig field for the tickettune arms (repeatable), e.g. compile=true",
    )
    ap.add_argument(
        "--levers",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help=f"the *{LEVERED} arms' FlowConfig overrides (repeatable; default {' '.join(DEFAULT_LEVERS)})",
    )
    ap.add_argument(
        "--merge",
        action="store_true",
        help="keep the tasks already in --json that this run does not measure (each task is stamped "
        "with the commit and date it was measured at)",
    )
    args = ap.parse_args(argv)
    args.tasks = [get_task(t.strip()).name for t in args.tasks.split(",") if t.strip()]
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = [a for a in args.arms if a not in ARMS]
    if bad:
        ap.error(f"unknown arms {bad}; expected some of {ARMS}")
    if "random" in args.arms and not set(EB_ARMS) & set(args.arms):
        ap.error("the random arm copies the widths of an EarlyBERT arm's ticket: add rewind or continue")
    try:
        args.sets = parse_sets(args.sets)
        args.levers = parse_sets(DEFAULT_LEVERS if args.levers is None else args.levers)
    except ValueError as e:
        ap.error(str(e))
    return args


# ------------------------------------------------------------------------------------------------ run


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    from tickettune.trainables.training.allocator import OFF_ENV, tune_malloc

    if args.no_malloc_tune:
        os.environ[OFF_ENV] = "1"  # the loop's own call becomes a no-op too
    tuned = tune_malloc()  # before any arm: every arm (Trainer too) alike
    out = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "precision": Precision.of(args.precision).name,
            "malloc_tuned": tuned,
        },
        "tasks": {},
    }
    for task in args.tasks:
        epochs = args.epochs or EPOCHS.get(task, 1.0)
        steps = math.ceil(epochs * len(loaders(args, task, as_tokenizer(args.model), 0)[0]))
        every = args.eval_every or max(1, steps // 10)
        runs: dict[str, list[dict]] = {a: [] for a in args.arms}
        measured = provenance()  # the commit and time the task's run starts at
        for seed in range(args.seeds):
            layout = None
            for arm in args.arms:
                print(f"[{task} seed {seed}] {arm} ...", flush=True)
                if arm in TRAINER_ARMS:
                    r = arm_trainer(args, task, seed, epochs, every, compile=arm == "trainer_compile")
                elif arm == "random":
                    r = arm_random(args, task, seed, epochs, every, layout)
                else:
                    base = arm.removesuffix(LEVERED).removesuffix(PLAIN)
                    sets = {**args.sets, **args.levers} if arm.endswith(LEVERED) else args.sets
                    sets = {**sets, "fast_path": False} if arm.endswith(PLAIN) else sets
                    r = arm_flow(args, task, seed, epochs, every, None if base == "dense" else base, sets)
                    layout = r["ticket_layout"] or layout
                r["seed"] = seed
                runs[arm].append(r)
                out["tasks"][task] = {
                    "budget_steps": steps,
                    "epochs": epochs,
                    "eval_every": every,
                    "metric": get_task(task).main_metric,
                    "runs": runs,
                    "partial": True,
                }
                save_partial(args, out)  # a long run interrupted keeps every arm it finished
                print(
                    f"  {arm}: {r['metric']:.4f} in {r['total_seconds']:.0f}s (train {r['train_seconds']:.0f}s, "
                    f"{r['steps']} steps, search {r['search_steps']})",
                    flush=True,
                )
        out["tasks"][task] = {
            "budget_steps": steps,
            "epochs": epochs,
            "eval_every": every,
            "metric": get_task(task).main_metric,
            "runs": runs,
            "summary": summarize(runs),
            "reference": reference_arm(runs),
            "measured": measured,
        }
    out["headline"] = headline(out)
    return out


def provenance() -> dict:
    """When and from which commit a task's figures came (a merged JSON can hold tasks of several runs)."""
    import subprocess

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit}


def merge_earlier(res: dict, path: Path | None) -> dict:
    """`--merge`: the tasks of an earlier complete run in `path` that this run did not measure, kept as they were."""
    if not path or not path.exists():
        return res
    earlier = json.loads(path.read_text())
    kept = {t: v for t, v in earlier.get("tasks", {}).items() if t not in res["tasks"] and "summary" in v}
    for t, v in kept.items():
        v.setdefault("measured", {"date": None, "commit": None, "note": "an earlier run of this script"})
    res["tasks"] = {**kept, **res["tasks"]}
    res["headline"] = headline(res)
    return res


def save_partial(args, out: dict) -> None:
    """Write what is measured so far next to --json (atomically): `<name>.partial.json`."""
    if not args.json:
        return
    path = args.json.with_suffix(".partial.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2, default=str))
    os.replace(tmp, path)


def reference_arm(runs: dict[str, list[dict]]) -> str:
    """The arm every ratio is taken against: the faster Trainer arm (mean total seconds), else dense."""
    trainers = [a for a in TRAINER_ARMS if runs.get(a)]
    if not trainers:
        return "dense"
    return min(trainers, key=lambda a: statistics.fmean(r["total_seconds"] for r in runs[a]))


def summarize(runs: dict[str, list[dict]]) -> dict:
    ref = runs[reference_arm(runs)]
    ref_time = statistics.fmean(r["total_seconds"] for r in ref)
    ref_metric = statistics.fmean(r["metric"] for r in ref)
    return {
        arm: {
            "mean_total_seconds": statistics.fmean(r["total_seconds"] for r in rs),
            "mean_train_seconds": statistics.fmean(r["train_seconds"] for r in rs),
            "mean_metric": statistics.fmean(r["metric"] for r in rs),
            "time_ratio": statistics.fmean(r["total_seconds"] for r in rs) / ref_time,
            "metric_diff_pt": 100 * (statistics.fmean(r["metric"] for r in rs) - ref_metric),
            "mean_search_steps": statistics.fmean(r["search_steps"] for r in rs),
        }
        for arm, rs in runs.items()
        if rs
    }


def headline(out: dict) -> dict | None:
    """The best EarlyBERT arm on SST-2: the fastest within 0.5 pt of the faster Trainer arm, else the most
    accurate; every figure against that Trainer arm (`reference`)."""
    sst2 = out["tasks"].get("sst2")
    if not sst2 or not set(TRAINER_ARMS) & set(sst2["summary"]):
        return None
    s = sst2["summary"]
    eb = [a for a in EB_ARMS if a in s]
    if not eb:
        return None
    ok = [a for a in eb if s[a]["metric_diff_pt"] >= -0.5]
    best = min(ok, key=lambda a: s[a]["time_ratio"]) if ok else max(eb, key=lambda a: s[a]["metric_diff_pt"])
    ref = sst2.get("reference") or reference_arm(sst2["runs"])
    return {
        "task": "sst2",
        "arm": best,
        "reference": ref,
        "time_ratio": s[best]["time_ratio"],
        "metric_diff_pt": s[best]["metric_diff_pt"],
        "dense_vs_trainer": s["dense"]["time_ratio"] if "dense" in s else None,
        "dense_levers_vs_trainer": s["dense" + LEVERED]["time_ratio"] if "dense" + LEVERED in s else None,
    }


def print_table(res: dict) -> None:
    for task, t in res["tasks"].items():
        print(
            f"{task}: budget {t['budget_steps']} steps ({t['epochs']:g} epochs), dev {t['metric']}, "
            f"ratios vs the {t.get('reference') or reference_arm(t['runs'])} arm"
        )
        print(f"  {'arm':<16}{'metric':>9}{'diff pt':>9}{'total s':>9}{'train s':>9}{'time ratio':>11}{'search':>8}")
        for arm, s in t["summary"].items():
            print(
                f"  {arm:<16}{s['mean_metric']:>9.4f}{s['metric_diff_pt']:>+9.2f}{s['mean_total_seconds']:>9.0f}"
                f"{s['mean_train_seconds']:>9.0f}{s['time_ratio']:>11.3f}{s['mean_search_steps']:>8.0f}"
            )
    if res.get("headline"):
        h = res["headline"]
        print(
            f"headline (sst2): {h['arm']} at {h['time_ratio']:.3f} of the faster Trainer arm's wall-clock "
            f"({h.get('reference', 'trainer')}), {h['metric_diff_pt']:+.2f} pt; tickettune dense / that arm = "
            f"{h['dense_vs_trainer']}"
        )


def main(argv=None) -> dict:
    args = parse_args(argv)
    res = run(args)
    if args.merge:
        res = merge_earlier(res, args.json)
    if args.plot:
        plot_curves(res, args.plot)
    out = finish(res, args.json, print_table)
    if args.json:
        args.json.with_suffix(".partial.json").unlink(missing_ok=True)  # the whole run is in --json now
    return out


if __name__ == "__main__":
    main()
