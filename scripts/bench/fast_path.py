#!/usr/bin/env python
"""The fast path's ablation: dense and ticket train-step time on real SST-2 batches, each lever alone and together.

One process, MiniLM-L6 (dense) and a ticket made as the flow makes it (`benchkit.real_steps.flow_ticket`:
coefficients attached, masks drawn with the flow's defaults, folded, pruned). Every variant runs train.train (the real
loop) on the sst2 task's real train loader (length-grouped, batch 32, max_length 64) for --steps steps after
the first (longest) batch, dense and ticket alternating which goes first, one untimed round (every shape's
kernels built) then --rounds timed ones. Figures per
variant: median step (wall and process CPU), the run's whole wall clock (compilation included: it happens in
the first step of each shape), ratios against today's dense and ticket/dense, distinct shapes seen, compile
counts. A lever is a TrainConfig field (or the data's `pad_to_multiple_of`); a lever whose field this
checkout does not have is skipped with a printed note, so the script runs before and after those land.
"today" is this checkout's loop as it stands (TrainConfig.tune_malloc on: the allocator is process-wide, so
every variant has it; its own effect is in the --gap section's *_malloc arms).

`--gap` first runs `measure_gap` (scripts/diagnostics/step_gap.py): where the synthetic one-shape ratio becomes
the real loop's.
The unpadding bound: the share of padded tokens in an epoch's length-grouped batches, with and without
bucketing (what dropping padding before the projections and the FFN could save at most).

    python scripts/bench/fast_path.py --steps 100 --rounds 2 --threads 2 --gap --json bench/fast_path.json
    python scripts/bench/fast_path.py --smoke     # < 60 s: 3 steps, no compile

Time here: --smoke < 60 s; the full run not timed
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from tickettune.trainables.model.build import load_model
from tickettune.trainables.model.flops import shape_of, train_flops_per_sequence
from tickettune.trainables.tasks import DataArgs, get_task
from tickettune.trainables.tasks.sampler import LengthGroupedSampler
from tickettune.trainables.training.allocator import tune_malloc
from tickettune.trainables.training.loop import TrainConfig, train
from tickettune.trainables.training.precision import cpu_has_fast_bf16

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms
from benchkit.bench import cpu, finish
from benchkit.real_steps import Skip1, StepTimer, flow_ticket, sst2_loader
from diagnostics.step_gap import measure_gap

# name -> (data pad multiple, TrainConfig overrides); "all" is every available lever at once
LEVERS: dict[str, tuple[int | None, dict]] = {
    "today": (None, {}),
    "pad8": (8, {}),
    "pad16": (16, {}),
    "compile": (8, {"compile": True}),
    "embeddings_freeze": (None, {"embeddings": "freeze"}),
    "embeddings_sparse": (None, {"embeddings": "sparse"}),
    "dropout0": (None, {"dropout": 0.0}),
    "bf16_master": (None, {"precision": "bf16-master"}),
}
ALL_TOGETHER = ("pad8", "compile", "embeddings_freeze", "dropout0", "bf16_master")  # --all's default


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--variants", default=",".join([*LEVERS, "all"]))
    ap.add_argument("--precision", default="fp32", help="the variants' base precision (bf16 on AVX2 is emulated)")
    ap.add_argument(
        "--all",
        default=None,
        help="the levers the 'all' variant combines (default: those of ALL_TOGETHER listed in --variants; "
        "bf16_master only where the CPU runs bf16 fast)",
    )
    ap.add_argument("--gap", action="store_true", help="also run the synthetic-vs-real gap measurement first")
    ap.add_argument("--train-samples", type=int, default=None, help="default: the whole SST-2 train split")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--smoke", action="store_true", help="3 steps, 1 round, today + pad8 + the skipped levers")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.smoke:
        args.steps, args.rounds, args.train_samples = 3, 1, args.train_samples or 640
        if args.variants == ap.get_default("variants"):
            args.variants = "today,pad8,embeddings_freeze,dropout0"
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in args.variants if v not in LEVERS and v != "all"]
    if bad or args.steps < 1 or args.rounds < 1:
        ap.error(f"unknown variants {bad} (known: {[*LEVERS, 'all']}); --steps and --rounds must be >= 1")
    return args


def machine() -> dict:
    return {**cpu(), "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads()}


def available(overrides: dict) -> str | None:
    """None when TrainConfig has every field; else a note naming the missing ones."""
    have = {f.name for f in dataclasses.fields(TrainConfig)}
    missing = [k for k in overrides if k not in have]
    if missing:
        return f"TrainConfig has no field {missing} in this checkout: skipped"
    try:
        TrainConfig(**overrides)
    except ValueError as e:  # the field is there but not this value yet (precision: bf16-master)
        return f"TrainConfig refuses {overrides} in this checkout ({e}): skipped"
    return None


def padding_share(lengths: list[int], batch: int, multiple: int | None, seed: int = 0) -> float:
    """Padded tokens / all tokens over one epoch of length-grouped batches (the sampler's real order)."""
    order = list(LengthGroupedSampler(lengths, batch, generator=torch.Generator().manual_seed(seed)))
    real = padded = 0
    for i in range(0, len(order), batch):
        ls = [lengths[j] for j in order[i : i + batch]]
        t = max(ls)
        if multiple:
            t = -(-t // multiple) * multiple
        real += sum(ls)
        padded += t * len(ls)
    return 1 - real / padded


def run_variant(name: str, pad: int | None, overrides: dict, dense, ticket, tok, args) -> dict:
    loader = sst2_loader(tok, args.data_root, args.train_samples, pad)
    cfg = dict(lr=1e-5, max_steps=args.steps, progress=False, precision=args.precision)
    cfg.update(overrides)
    out = {"dense": [], "ticket": []}
    # Round 0 is untimed: it builds every shape's kernels (oneDNN's bf16 GEMMs, inductor's graphs), which a
    # real epoch pays once per shape and which would otherwise land in the timed steps of whichever variant
    # runs first (a ticket has a kernel per FFN width: measured, it made the first variant's ticket 1.04x dense).
    for r in range(args.rounds + 1):
        for arm in ("dense", "ticket") if r % 2 == 0 else ("ticket", "dense"):
            loader.generator.manual_seed(0)  # every arm and variant trains on the same batches, in the same order
            model = copy.deepcopy(dense if arm == "dense" else ticket).train()
            timer = StepTimer()
            t0 = time.perf_counter()
            res = train(model, Skip1(loader, args.steps), TrainConfig(**cfg), [timer])
            out[arm].append(
                {
                    "wall_s": time.perf_counter() - t0,
                    "steps": [t for t in timer.times],
                    "shapes": res.shapes,
                    "compile": res.compile,
                }
            )
    row: dict = {"pad_to_multiple_of": pad, "overrides": overrides}
    for arm, runs in out.items():
        steady = [s for run in runs[1:] for s in run["steps"]]
        row[arm] = {
            "step_ms": 1e3 * statistics.median(s[0] for s in steady),
            "cpu_ms": 1e3 * statistics.median(s[1] for s in steady),
            "wall_s_first_run": runs[0]["wall_s"],
            "wall_s_median": statistics.median(r["wall_s"] for r in runs[1:]),
            "shapes": runs[0]["shapes"],
            "compile": runs[0]["compile"],
        }
    row["ticket_over_dense"] = row["ticket"]["step_ms"] / row["dense"]["step_ms"]
    row["ticket_over_dense_cpu"] = row["ticket"]["cpu_ms"] / row["dense"]["cpu_ms"]
    row["ticket_over_dense_wall_incl_compile"] = row["ticket"]["wall_s_first_run"] / row["dense"]["wall_s_first_run"]
    print(
        f"  {name:<18} dense {row['dense']['step_ms']:7.1f} ms  ticket {row['ticket']['step_ms']:7.1f} ms  "
        f"t/d {row['ticket_over_dense']:.3f} (cpu {row['ticket_over_dense_cpu']:.3f})  shapes "
        f"{row['dense']['shapes']}",
        flush=True,
    )
    return row


def run(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dense, tok = load_model("minilm-l6", head="classification", num_labels=2)
    ticket = flow_ticket(dense, 0)
    res: dict = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine(),
        "notes": [],
        "variants": {},
    }
    res["flop_ratio_at_16"] = train_flops_per_sequence(shape_of(ticket), 16) / train_flops_per_sequence(
        shape_of(dense), 16
    )
    lengths = [
        len(x)
        for x in get_task("sst2")
        .train_loader(tok, DataArgs(root=args.data_root, max_length=64, max_train_samples=args.train_samples))
        .dataset["input_ids"]
    ]
    res["unpadding_bound"] = {f"pad{m or 1}": padding_share(lengths, 32, m) for m in (None, 8, 16)}
    print(
        "padded share of tokens per epoch (unpadding's upper bound): "
        + ", ".join(f"{k} {v:.3f}" for k, v in res["unpadding_bound"].items())
    )
    if args.gap:
        loader = sst2_loader(tok, args.data_root, args.train_samples)
        res["gap"] = measure_gap(dense, ticket, loader, args.steps, args.precision, args.rounds, tune_malloc)
    res["malloc_tuned"] = tune_malloc()  # what the loop's users get from allocator.py; the same for every variant
    names = [v for v in args.variants if v != "all"]
    for name in names:
        pad, overrides = LEVERS[name]
        note = available(overrides)
        if note:
            print(f"  {name:<18} {note}")
            res["notes"].append(f"{name}: {note}")
            continue
        res["variants"][name] = run_variant(name, pad, overrides, dense, ticket, tok, args)
    if "all" in args.variants:
        pad, overrides = 8, {}
        together = (
            args.all.split(",")
            if args.all
            else [n for n in ALL_TOGETHER if n in names and (n != "bf16_master" or cpu_has_fast_bf16())]
        )
        res["all_levers"] = together
        for name in together:
            if available(LEVERS[name][1]) is None:
                overrides.update(LEVERS[name][1])
                pad = LEVERS[name][0] or pad
        res["variants"]["all"] = run_variant("all", pad, overrides, dense, ticket, tok, args)
    base = res["variants"].get("today", {}).get("dense", {}).get("step_ms")
    for row in res["variants"].values():
        if base:
            row["dense_vs_today_dense"] = row["dense"]["step_ms"] / base
            row["ticket_vs_today_dense"] = row["ticket"]["step_ms"] / base
    return res


def print_table(res: dict) -> None:
    m = res["machine"]
    print(
        f"\n{m['model_name']}, {m['threads']} threads, torch {m['torch']}; flop ratio at 16 tokens "
        f"{res['flop_ratio_at_16']:.3f}; steps {res['config']['steps']} x {res['config']['rounds']} rounds"
    )
    print(
        f"{'variant':<18}{'dense ms':>9}{'ticket ms':>10}{'t/d':>7}{'t/d cpu':>8}{'d/today':>8}{'t/today':>8}"
        f"{'wall d s':>9}{'wall t s':>9}{'shapes':>7}{'graphs':>7}"
    )
    for name, r in res["variants"].items():
        c = r["dense"]["compile"] or {}
        print(
            f"{name:<18}{r['dense']['step_ms']:>9.1f}{r['ticket']['step_ms']:>10.1f}{r['ticket_over_dense']:>7.3f}"
            f"{r['ticket_over_dense_cpu']:>8.3f}{r.get('dense_vs_today_dense', float('nan')):>8.3f}"
            f"{r.get('ticket_vs_today_dense', float('nan')):>8.3f}{r['dense']['wall_s_first_run']:>9.1f}"
            f"{r['ticket']['wall_s_first_run']:>9.1f}{r['dense']['shapes']:>7}{c.get('graphs', '-'):>7}"
        )
    for note in res["notes"]:
        print("note:", note)


def main(argv=None) -> dict:
    args = parse_args(argv)
    return finish(run(args), args.json, print_table)


if __name__ == "__main__":
    main()
