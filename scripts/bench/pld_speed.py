#!/usr/bin/env python
"""Training time per sample with Progressive Layer Dropping vs without, same model, same run.

A pre-LN BERT trained from scratch (masked-only MLM head, `SparseBertForMaskedLM`) on WikiText-2
blocks (valid.txt, tokenised with the MiniLM vocabulary, 15% masking). Each measured round runs one
optimizer step without PLD and one with PLD on the same batch, in alternating order; the schedule is
started at step `--start-step` (default 20/γ, where θ is within e^-20 of θ̄), so the PLD steps drop
layers at the settled rate. A step is forward + backward + gradient clipping + fused AdamW, as in
`train.train`. Reported: median (and mean) seconds per sample of each arm, their ratio, the expected
fraction of layers computed (mean p_l), the fraction actually computed in the measured steps, and the
analytic matmul-FLOP ratio (flops.py; embeddings, LayerNorms, softmax and the optimizer are not in it).

With L layers and θ̄ = 0.5 the expected kept fraction is 1 − (L+1)/(4L): 0.729 for L = 12.

    python scripts/bench/pld_speed.py --steps 20 --layers 12 --hidden 384 --json results/pld_speed.json

Time here: not timed
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

import torch

from tickettune.trainables.model.build import ScratchConfig, count_parameters, scratch_model
from tickettune.trainables.model.encoder import encoder_of
from tickettune.trainables.model.flops import shape_of, train_flops_per_sequence
from tickettune.trainables.pld import PLDConfig, ProgressiveLayerDrop
from tickettune.trainables.tasks.data import mlm_loader
from tickettune.trainables.training.loop import TrainConfig, make_optimizer
from tickettune.trainables.training.precision import PRECISIONS, Precision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms
from benchkit.bench import device_info, device_of, finish, now


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20, help="measured rounds (one step of each arm per round)")
    ap.add_argument("--warmup", type=int, default=3, help="unmeasured rounds first")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--heads", type=int, default=None, help="default: hidden // 64")
    ap.add_argument("--ffn", type=int, default=None, help="default: 4 * hidden")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--theta-bar", type=float, default=0.5)
    ap.add_argument("--gamma", type=float, default=0.001)
    ap.add_argument("--start-step", type=int, default=None, help="PLD schedule step of the first round (default 20/γ)")
    ap.add_argument(
        "--precision",
        default="fp32,bf16",
        help="comma-separated precisions timed side by side (fp32, bf16, auto; fp16 on CUDA)",
    )
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model trains")
    ap.add_argument("--tokenizer", default="minilm-l6", help="vocabulary: an alias or a local tokenizer folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-root", default=None, help="shared data folder (default: $TICKETTUNE_DATA, ../shared/data)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args(argv)
    args.heads = args.heads or max(1, args.hidden // 64)
    args.ffn = args.ffn or 4 * args.hidden
    if args.start_step is None:
        args.start_step = int(20 / args.gamma) if args.gamma > 0 else 0
    if args.steps < 1 or args.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")
    args.precision = [p.strip() for p in args.precision.split(",") if p.strip()]
    if not args.precision or any(p not in PRECISIONS for p in args.precision):
        ap.error(f"--precision: expected some of {PRECISIONS}")
    return args


def expected_flop_fraction(model, seq: int, probs: list[float]) -> float:
    """E[training matmul FLOPs with PLD] / FLOPs at full depth (FLOPs are linear in the kept layers)."""
    shape, n = shape_of(model), len(probs)
    none = train_flops_per_sequence(shape, seq, [False] * n)
    full = train_flops_per_sequence(shape, seq, [True] * n)
    per_layer = [train_flops_per_sequence(shape, seq, [i == l for i in range(n)]) - none for l in range(n)]
    return (none + sum(p * f for p, f in zip(probs, per_layer))) / full


def run(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    cfg = ScratchConfig(
        layers=args.layers,
        heads=args.heads,
        hidden=args.hidden,
        ffn=args.ffn,
        max_positions=max(512, args.seq_len),
        pre_ln=True,
        tokenizer=args.tokenizer,
    )
    model, tok = scratch_model(cfg, head="mlm")
    model.to(args.device)
    model.train()
    enc = encoder_of(model)
    loader = mlm_loader(
        tok, "valid", batch_size=args.batch_size, max_length=args.seq_len, seed=args.seed, root=args.data_root
    )
    pld = ProgressiveLayerDrop(PLDConfig(theta_bar=args.theta_bar, gamma=args.gamma, seed=args.seed))
    by_precision = {}
    for name in args.precision:
        amp = Precision.of(name, device)
        by_precision[amp.name] = measure(args, model, enc, loader, pld, amp, device)
    probs = pld.keep_probs(args.layers)  # at the last round's step: θ has settled
    first = by_precision[Precision.of(args.precision[0], device).name]
    return {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            **device_info(device),
        },
        "parameters": count_parameters(model),
        "theta": pld.theta(),
        "expected_layer_fraction": sum(probs) / len(probs),
        "expected_flop_fraction": expected_flop_fraction(model, args.seq_len, probs),
        **first,
        "precisions": by_precision,
    }


def measure(args, model, enc, loader, pld, amp: Precision, device: torch.device) -> dict:
    """Alternating base/PLD steps under one precision; seconds per sample."""
    optimizer = make_optimizer(model, TrainConfig(lr=1e-4))
    params = [p for g in optimizer.param_groups for p in g["params"]]

    def step(batch: dict, use_pld: bool, t: int) -> float:
        enc.layer_drop = pld if use_pld else None
        pld.set_step(t)
        start = now(device)
        with amp.train_autocast():
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return now(device) - start

    batches = iter(loader)
    times = {"base": [], "pld": []}
    kept = []
    for i in range(args.warmup + args.steps):
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        t = args.start_step + i
        order = ("base", "pld") if i % 2 == 0 else ("pld", "base")  # alternate: no arm always runs first
        got = {arm: step(batch, arm == "pld", t) for arm in order}
        if i >= args.warmup:
            for arm in times:
                times[arm].append(got[arm] / len(batch["input_ids"]))
            kept.append(sum(k for k, _ in pld.last_gates))
    enc.layer_drop = None
    med = {arm: statistics.median(v) for arm, v in times.items()}
    mean = {arm: statistics.fmean(v) for arm, v in times.items()}
    return {
        "sec_per_sample": {"median": med, "mean": mean, "all": times},
        "ratio_median": med["pld"] / med["base"],
        "ratio_mean": mean["pld"] / mean["base"],
        "realized_layer_fraction": sum(kept) / (len(kept) * args.layers),
        "kept_layers_per_step": kept,
    }


def print_table(res: dict) -> None:
    c = res["config"]
    print(
        f"pre-LN BERT {c['layers']}L H{c['hidden']} A{c['heads']} F{c['ffn']}, seq {c['seq_len']}, "
        f"batch {c['batch_size']}, {res['machine']['threads']} threads, {res['parameters'] / 1e6:.1f}M params; "
        f"{c['steps']} rounds after {c['warmup']} warm-up; PLD θ̄={c['theta_bar']} at step {c['start_step']} "
        f"(θ={res['theta']:.4f})"
    )
    for prec, r in res["precisions"].items():
        s = r["sec_per_sample"]
        print(f"[{prec}] {'arm':<10}{'median ms/sample':>18}{'mean ms/sample':>16}")
        for arm in ("base", "pld"):
            print(f"[{prec}] {arm:<10}{1e3 * s['median'][arm]:>18.2f}{1e3 * s['mean'][arm]:>16.2f}")
        print(
            f"[{prec}] {'ratio':<10}{r['ratio_median']:>18.3f}{r['ratio_mean']:>16.3f}   layers computed "
            f"{r['realized_layer_fraction']:.3f}; target median ratio <= 0.76: "
            f"{'met' if r['ratio_median'] <= 0.76 else 'NOT met'}"
        )
    print(
        f"expected fraction of layers computed (mean p_l): {res['expected_layer_fraction']:.3f}; "
        f"expected matmul-FLOP fraction: {res['expected_flop_fraction']:.3f}"
    )
    p = res["precisions"]
    if {"fp32", "bf16"} <= set(p):
        print(
            f"bf16 / fp32 time per sample (median): base "
            f"{p['bf16']['sec_per_sample']['median']['base'] / p['fp32']['sec_per_sample']['median']['base']:.3f}, "
            f"pld {p['bf16']['sec_per_sample']['median']['pld'] / p['fp32']['sec_per_sample']['median']['pld']:.3f}"
        )


def main(argv=None) -> dict:
    args = parse_args(argv)
    device_of(args.device)  # a clear exit without CUDA; TF32 on for fp32, as in the trials
    return finish(run(args), args.json, print_table)


if __name__ == "__main__":
    main()
