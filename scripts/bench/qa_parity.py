#!/usr/bin/env python
"""SQuAD parity: tickettune's fine-tune and EarlyBERT against HF `Trainer` with the `run_qa` recipe.

Arms, per seed, one after the other in one process (same threads, same machine):
* ``hf``        — HF ``Trainer`` on the stock ``AutoModelForQuestionAnswering``, with run_qa's preprocessing and
  post-processing in scripts/benchkit/run_qa.py (torch + transformers + datasets only): windows of max_length
  tokens padded to max_length, overlapping by --doc-stride tokens (``truncation="only_second"``, overflowing
  tokens, offsets), start/end labels on the first answer ([CLS] when the window does not hold it whole), n-best
  20, answers of at most 30 tokens; 10% warm-up, linear decay, weight decay 0.01, fused AdamW. The reference of
  every ratio.
* ``dense``     — ``tickettune finetune --task squad`` itself (searcher.cli.main: its defaults, length-grouped
  batches).
* ``dense_ungrouped`` (not run by default) — the same with ``--no-group-by-length``: what grouping costs or buys.
* ``earlybert`` — ``tickettune earlybert``'s flow: the paper's ratios (heads 1/3, FFN 0.4), ticket_mode
  continue, the budget = the dense run's epochs; every other setting a FlowConfig default (``unconverged:
  ticket``, so a search that never converges still gives a score).
Every arm trains the same questions (seed s: the seeded subset ``tickettune finetune --seed s
--max-train-samples N`` takes), for the same epochs, lr, batch, max_length and precision, and is scored on the
same dev questions by ONE function (``squad_eval.squad_scores``, the official v1.1 evaluation). Times: ``train_
seconds`` is the training loop alone (Trainer's train_runtime; tickettune's loop; EarlyBERT's search + ticket
training), ``total_seconds`` the arm's whole run (loading, tokenising, training, scoring).

    python scripts/bench/qa_parity.py --json bench/qa_parity.json        # 3000 questions, 1 epoch, 2 seeds
    python scripts/bench/qa_parity.py --smoke                              # < 60 s, a tiny run of every arm
    python scripts/bench/qa_parity.py --merge --first-seed 1 --seeds 1     # add seed 1 to the file's seed-0 runs

Time here: ~42 min for 2 seeds in bf16 (the arms' 2,530 s in bench/qa_parity_bf16.json); --smoke < 60 s
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import torch

from tickettune.trainables.tasks import DataArgs, get_task
from tickettune.trainables.tasks import squad as S

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms
from benchkit.bench import cpu, finish, flow_config
from benchkit.run_qa import arm_hf

ARMS = ("hf", "dense", "dense_ungrouped", "earlybert")
DEFAULT_ARMS = ("hf", "dense", "earlybert")


# ------------------------------------------------------------------------------ tickettune's arms


def arm_dense(args, seed: int, grouped: bool = True) -> dict:
    """`tickettune finetune --task squad` as a user types it; its --json has the metrics and the loop's time."""
    from tickettune.searcher.cli import main as cli

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        argv = [
            "finetune",
            "--task",
            "squad",
            "--model",
            args.model,
            "--seed",
            str(seed),
            "--max-train-samples",
            str(args.train_samples),
            "--epochs",
            str(args.epochs),
            "--lr",
            str(args.lr),
            "--batch-size",
            str(args.batch_size),
            "--max-length",
            str(args.max_length),
            "--precision",
            args.precision,
            "--json",
            f"{tmp}/out.json",
        ]
        argv += ["--max-eval-samples", str(args.eval_samples)] if args.eval_samples else []
        argv += ["--max-steps", str(args.max_steps)] if args.max_steps else []
        argv += ["--data-root", args.data_root] if args.data_root else []
        argv += [] if grouped else ["--no-group-by-length"]
        if cli(argv) != 0:
            raise RuntimeError(f"tickettune {' '.join(argv)} failed")
        out = json.loads(Path(f"{tmp}/out.json").read_text())
    # the CLI scores with squad_scores over the same dev questions: the one function every arm uses
    return {
        "train_seconds": out["train_seconds"],
        "total_seconds": time.perf_counter() - t0,
        "steps": out["steps"],
        "exact_match": out["metrics"]["exact_match"],
        "f1": out["metrics"]["f1"],
    }


class RecordedSquad(S.SquadTask):
    """The squad task, keeping the last evaluation's metrics (run_flow hands back only the main one)."""

    last: ClassVar[dict] = {}

    def evaluate(self, model, data, precision="auto"):
        RecordedSquad.last = super().evaluate(model, data, precision)
        return RecordedSquad.last


def arm_earlybert(args, seed: int) -> dict:
    """EarlyBERT through run_flow (what `tickettune earlybert --set task=squad ...` runs)."""
    from tickettune.trainables.flow import run_flow
    from tickettune.trainables.reporter import LocalReporter

    t0 = time.perf_counter()
    task = RecordedSquad(S.SPECS[0])
    extra = {
        k: getattr(args, k)
        for k in ("coef_lr", "eps", "window", "mask_interval", "search_max_steps")
        if getattr(args, k) is not None
    }
    budget = {"budget_steps": args.max_steps} if args.max_steps else {"budget_epochs": args.epochs}
    cfg = flow_config(
        args,
        task,
        seed,
        head_ratio=1 / 3,
        ffn_ratio=0.4,
        ticket_mode="continue",
        unconverged="ticket",
        **budget,
        **extra,
    )
    result = run_flow(cfg, LocalReporter(verbose=False))
    metrics = RecordedSquad.last
    if metrics.get("f1") != result.val_metric:
        raise RuntimeError("the flow's F1 is not the recorded evaluation's")
    return {
        "train_seconds": result.seconds.get("search", 0.0) + result.seconds.get("ticket", 0.0),
        "total_seconds": time.perf_counter() - t0,
        "steps": result.search_steps + result.ticket_steps,
        "search_steps": result.search_steps,
        "early_bird_step": result.early_bird_step,
        "relative_cost": result.relative_cost,
        "exact_match": metrics["exact_match"],
        "f1": metrics["f1"],
    }


# ------------------------------------------------------------------------------ the run


def machine() -> dict:
    c = cpu()
    return {
        "cpu": c["model_name"],
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "flags": c["flags"],
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def run(args) -> dict:
    kept = kept_runs(args)  # a --merge that cannot merge stops here, before anything is computed
    torch.set_num_threads(args.threads)
    from tickettune.trainables.training.precision import Precision

    spec = S.SPECS[0]
    out = {
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "machine": machine(),
        "precision": Precision.of(args.precision).name,
        "tickettune_stride": S.stride_for(args.max_length),
        "note": "time figures measured on a shared machine are noisy",
    }
    if out["tickettune_stride"] != args.doc_stride:
        print(
            f"note: tickettune's stride at max_length {args.max_length} is {out['tickettune_stride']}, "
            f"the hf arm's --doc-stride {args.doc_stride}",
            flush=True,
        )
    data = DataArgs(root=args.data_root, max_length=args.max_length, max_eval_samples=args.eval_samples)
    get_task("squad").check(data)
    out["runs"] = {**kept, **{a: kept.get(a, []) for a in args.arms}}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        # the questions `tickettune finetune --seed <seed> --max-train-samples N` trains on
        train_ds = S.load_squad(spec, "train", args.data_root, args.train_samples, "local", seed)
        dev_ds = S.load_squad(spec, "dev", args.data_root, args.eval_samples, "local", seed)
        for arm in args.arms:
            print(f"[seed {seed}] {arm} ...", flush=True)
            if arm == "hf":
                r = arm_hf(args, seed, train_ds, dev_ds)
            elif arm == "earlybert":
                r = arm_earlybert(args, seed)
            else:
                r = arm_dense(args, seed, grouped=arm == "dense")
            r["seed"], r["settings"] = seed, settings(args, arm)
            out["runs"][arm] = sorted(out["runs"][arm] + [r], key=lambda x: x["seed"])
            print(
                f"  {arm}: EM {r['exact_match']:.2f} F1 {r['f1']:.2f}, train {r['train_seconds']:.1f}s "
                f"({r['steps']} steps), total {r['total_seconds']:.1f}s",
                flush=True,
            )
    out["summary"] = summarize(out["runs"])
    out["headline"] = headline(out["summary"])
    return out


SHARED = ("model", "train_samples", "eval_samples", "epochs", "max_steps", "lr", "batch_size", "max_length")
SHARED += ("precision", "threads", "data_root")
ARM_KEYS = {"hf": ("doc_stride",), "earlybert": ("coef_lr", "eps", "window", "mask_interval", "search_max_steps")}


MACHINE_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")  # what decides CPU speed per dtype


def settings(args, arm: str) -> dict:
    """What an arm's figures depend on, the CPU included (the machines change between sessions and times
    compare only on one): a run merged from an earlier file (--merge) must match it."""
    c = cpu()
    return {
        **{k: getattr(args, k) for k in SHARED + ARM_KEYS.get(arm, ())},
        "cpu": c["model_name"],
        "cpu_flags": [f for f in MACHINE_FLAGS if f in c["flags"]],
    }


def _recorded(earlier: dict, run: dict, keys) -> dict:
    """A run's settings as recorded; runs from before they were recorded: the file's config and machine."""
    if "settings" in run:
        return run["settings"]
    m = earlier.get("machine", {})
    return {
        **{k: earlier["config"].get(k) for k in keys},
        "cpu": m.get("cpu"),
        "cpu_flags": [f for f in MACHINE_FLAGS if f in m.get("flags", [])],
    }


def kept_runs(args) -> dict[str, list[dict]]:
    """--merge: the runs of the earlier --json this run does not redo (another seed or arm), when they were
    measured with the same settings; SystemExit naming the first difference before anything is computed."""
    if not (args.merge and args.json and args.json.exists()):
        return {}
    earlier = json.loads(args.json.read_text())
    redo = set(range(args.first_seed, args.first_seed + args.seeds))
    kept: dict[str, list[dict]] = {}
    for arm, rs in earlier.get("runs", {}).items():
        now = settings(args, arm)
        for r in rs:
            if arm in args.arms and r["seed"] in redo:
                continue
            had = _recorded(earlier, r, now)
            for k, v in now.items():
                if had.get(k) != v:
                    raise SystemExit(
                        f"--merge: {args.json}'s {arm} run of seed {r['seed']} has {k}={had.get(k)!r}, this run "
                        f"{k}={v!r}; redo that arm and seed too (--arms/--seeds/--first-seed) or write another --json"
                    )
            kept.setdefault(arm, []).append(r)
    return kept


def summarize(runs: dict[str, list[dict]]) -> dict:
    """Per arm: mean and median of EM, F1 and times; against hf: the differences in points and the time ratio."""
    ref = runs.get("hf") or []
    ref_train = statistics.fmean(r["train_seconds"] for r in ref) if ref else math.nan
    out = {}
    for arm, rs in runs.items():
        if not rs:
            continue
        s = {
            f"{stat}_{k}": fn(r[k] for r in rs)
            for k in ("exact_match", "f1", "train_seconds", "total_seconds")
            for stat, fn in (("mean", statistics.fmean), ("median", lambda xs: statistics.median(list(xs))))
        }
        if ref:
            s["f1_diff"] = s["mean_f1"] - statistics.fmean(r["f1"] for r in ref)
            s["em_diff"] = s["mean_exact_match"] - statistics.fmean(r["exact_match"] for r in ref)
            s["time_ratio"] = s["mean_train_seconds"] / ref_train
        out[arm] = s
    return out


def headline(summary: dict) -> dict | None:
    """tickettune dense - HF (points) and its training time over HF's; the EarlyBERT arm's likewise."""
    if "hf" not in summary or "dense" not in summary:
        return None
    d = summary["dense"]
    h = {"f1_diff": d["f1_diff"], "em_diff": d["em_diff"], "time_ratio": d["time_ratio"]}
    if "earlybert" in summary:
        e = summary["earlybert"]
        h["earlybert"] = {
            "f1": e["mean_f1"],
            "f1_diff": e["f1_diff"],
            "em_diff": e["em_diff"],
            "time_ratio": e["time_ratio"],
        }
    return h


def print_table(res: dict) -> None:
    print(
        f"SQuAD v1.1 parity ({res['config']['train_samples']} questions, {res['config']['epochs']:g} epoch(s), "
        f"seeds {sorted({r['seed'] for rs in res['runs'].values() for r in rs})}, {res['precision']}; ratios vs hf; "
        "noisy if the machine is shared)"
    )
    print(f"  {'arm':<16}{'EM':>8}{'F1':>8}{'dEM':>8}{'dF1':>8}{'train s':>9}{'total s':>9}{'time ratio':>11}")
    for arm, s in res["summary"].items():
        print(
            f"  {arm:<16}{s['mean_exact_match']:>8.2f}{s['mean_f1']:>8.2f}{s.get('em_diff', math.nan):>+8.2f}"
            f"{s.get('f1_diff', math.nan):>+8.2f}{s['mean_train_seconds']:>9.1f}{s['mean_total_seconds']:>9.1f}"
            f"{s.get('time_ratio', math.nan):>11.3f}"
        )
    if res.get("headline"):
        print("headline: " + json.dumps(res["headline"]))


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arms", default=",".join(DEFAULT_ARMS), help=f"some of {','.join(ARMS)}")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first..first+seeds-1")
    ap.add_argument(
        "--merge",
        action="store_true",
        help="keep the earlier --json's runs of other seeds/arms (same settings) and redo only these",
    )
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--train-samples", type=int, default=3000, help="a seeded subset of the train questions")
    ap.add_argument("--eval-samples", type=int, default=None, help="default: every dev question (1,746)")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-steps", type=int, default=None, help="instead of epochs (every arm)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument(
        "--doc-stride",
        type=int,
        default=None,
        help="the hf arm's; default: tickettune's at max_length (128 at 256, run_qa's)",
    )
    ap.add_argument("--precision", default="auto", help="auto: bf16 where fast, else fp32 (every arm)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--data-root", default=None)
    for name in ("coef_lr", "eps"):  # EarlyBERT settings: default None = FlowConfig's default
        ap.add_argument(f"--{name.replace('_', '-')}", type=float, default=None)
    for name in ("window", "mask_interval", "search_max_steps"):
        ap.add_argument(f"--{name.replace('_', '-')}", type=int, default=None)
    ap.add_argument("--json", type=Path, default=Path("bench/qa_parity.json"))
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="< 60 s: 8 questions, 2 steps of 4 windows of 64 tokens, 4 dev questions, 1 seed",
    )
    args = ap.parse_args(argv)
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = [a for a in args.arms if a not in ARMS]
    if bad:
        ap.error(f"unknown arms {bad}; expected some of {ARMS}")
    if args.smoke:
        args.train_samples, args.eval_samples, args.seeds, args.max_steps = 8, 4, 1, 2
        args.max_length, args.batch_size, args.threads = 64, 4, min(args.threads, 2)
        args.mask_interval, args.window, args.search_max_steps, args.eps = 1, 2, 1, 1.0
        if args.json == Path("bench/qa_parity.json"):
            args.json = None  # a smoke run never overwrites the measured figures
    if args.doc_stride is None:
        args.doc_stride = S.stride_for(args.max_length)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    res = run(args)
    if args.json:
        res["config"]["json"] = str(args.json)
        tmp = args.json.with_suffix(".tmp")
        finish(res, tmp, print_table)
        os.replace(tmp, args.json)
        return res
    return finish(res, None, print_table)


if __name__ == "__main__":
    main()
