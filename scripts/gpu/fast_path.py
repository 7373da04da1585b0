#!/usr/bin/env python
"""The fast path on a GPU (scripts/gpu_check.sh's `fastpath` step): BERT-base dense vs ticket train-step time, bf16.

At 32 x 128 on an H200 a BERT-base step is a few milliseconds of kernels and as many of launches: the
ticket's smaller matmuls save nothing while the host is what waits (measured before: ticket/dense 0.988).
This times, per shape (32 x 128 and 128 x 128), the train step (forward + backward + clip + fused AdamW +
zero_grad, as train.train) three ways: eager; `torch.compile` (inductor, Triton: fewer, fused kernels);
`torch.compile(mode="reduce-overhead")` (the same inside CUDA graphs: one launch per graph, shapes fixed,
which one bucketed shape is). Compile time is measured apart (the warm-up steps) and reported. The ticket
prunes 1/3 of the heads per layer and 40% of the FFN neurons globally (random scores, widths rounded to 8).
Target (issue 17): ticket step <= 0.80 x dense at 32 x 128 bf16.

    python scripts/gpu/fast_path.py --model WORK/bert --json OUT/fast_path.json
    python scripts/gpu/fast_path.py --model WORK/bert --smoke --device cpu   # eager only, toy shapes
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from tickettune.trainables.earlybert.draw import make_ticket, snapshot
from tickettune.trainables.earlybert.masks import MaskConfig, draw_masks
from tickettune.trainables.model.build import load_model
from tickettune.trainables.training.loop import TrainConfig, make_optimizer
from tickettune.trainables.training.precision import Precision

MODES = {"eager": None, "compile": "default", "cudagraphs": "reduce-overhead"}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a BERT folder (gpu_check.sh's random BERT-base)")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--shapes", default="32x128,128x128")
    ap.add_argument("--modes", default=None, help=f"from {','.join(MODES)} (default: all; eager with --smoke)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5, help="compile happens here: timed apart")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--smoke", action="store_true", help="2x16, 2 steps, eager only: tests the script on a CPU")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.smoke:
        args.shapes, args.steps, args.warmup = "2x16", 2, 1
        args.modes = args.modes or "eager"
    args.modes = [m.strip() for m in (args.modes or ",".join(MODES)).split(",") if m.strip()]
    if any(m not in MODES for m in args.modes):
        ap.error(f"--modes: expected some of {list(MODES)}")
    try:
        args.shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    except ValueError:
        ap.error(f"--shapes {args.shapes!r}: expected BxT[,BxT...]")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device")
    return args


def build(path: str, device: str):
    torch.manual_seed(0)
    dense, _ = load_model(path, head="classification", num_labels=2)
    g = torch.Generator().manual_seed(0)
    from tickettune.trainables.model.encoder import encoder_of

    layers = encoder_of(dense).blocks
    heads, ffn = draw_masks(
        [torch.rand(l.num_heads, generator=g) for l in layers],
        [torch.rand(l.ffn_width, generator=g) for l in layers],
        MaskConfig(ffn_multiple=8),
    )
    ticket = make_ticket(snapshot(dense), dense, heads, ffn, rewind=True)
    return dense.to(device), ticket.to(device)


def sync(device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def time_mode(model0, mode: str, batch: dict, args) -> dict:
    model = copy.deepcopy(model0).train()
    opt = make_optimizer(model, TrainConfig(lr=1e-5, fused=args.device == "cuda"))
    params = [p for g in opt.param_groups for p in g["params"]]
    fwd = model if MODES[mode] is None else torch.compile(model, mode=MODES[mode], dynamic=False)
    amp = Precision.of(args.precision, args.device)

    def step() -> None:
        if mode == "cudagraphs":
            torch.compiler.cudagraph_mark_step_begin()
        with amp.train_autocast():
            loss = fwd(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    t0 = sync(args.device)
    for _ in range(args.warmup):
        step()
    warm = sync(args.device) - t0
    times = []
    for _ in range(args.steps):
        t = sync(args.device)
        step()
        times.append(sync(args.device) - t)
    return {"step_ms": 1e3 * statistics.median(times), "warmup_s_incl_compile": warm}


def run(args) -> dict:
    dense, ticket = build(args.model, args.device)
    res: dict = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "precision": args.precision,
        "smoke": args.smoke,
        "shapes": {},
    }
    for b, t in args.shapes:
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(1000, 20000, (b, t), generator=g)
        batch = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "labels": torch.randint(0, 2, (b,), generator=g),
        }
        batch = {k: v.to(args.device) for k, v in batch.items()}
        row = {}
        for mode in args.modes:
            d, k = time_mode(dense, mode, batch, args), time_mode(ticket, mode, batch, args)
            row[mode] = {"dense": d, "ticket": k, "ticket_over_dense": k["step_ms"] / d["step_ms"]}
            print(
                f"{b}x{t} {mode:<11} dense {d['step_ms']:7.2f} ms  ticket {k['step_ms']:7.2f} ms  "
                f"ratio {row[mode]['ticket_over_dense']:.3f}  (warm-up incl. compile {d['warmup_s_incl_compile']:.1f}"
                f" / {k['warmup_s_incl_compile']:.1f} s)",
                flush=True,
            )
        base = row[args.modes[0]]["dense"]["step_ms"]
        for mode in args.modes:
            row[mode]["dense_vs_first_mode_dense"] = row[mode]["dense"]["step_ms"] / base
        res["shapes"][f"{b}x{t}"] = row
    return res


def main(argv=None) -> dict:
    args = parse_args(argv)
    res = run(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
