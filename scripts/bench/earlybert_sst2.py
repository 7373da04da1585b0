"""Dense fine-tuning vs EarlyBERT (search phase + ticket training) on SST-2, same epochs, same run.

Both arms see the same train subset, the same number of ticket/dense epochs, and are scored on the full
SST-2 dev set. EarlyBERT's total time counts its search phase. Prints a table; --json writes it.

    python scripts/bench/earlybert_sst2.py --train-samples 4000 --epochs 2 --json bench_earlybert.json

Time here: ~18 min for the README's run (wall_seconds 1,075 in bench/earlybert_sst2.json)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from tickettune.trainables.config import FlowConfig
from tickettune.trainables.flow import run_flow  # noqa: E402
from tickettune.trainables.model.build import load_model  # noqa: E402
from tickettune.trainables.reporter import LocalReporter
from tickettune.trainables.tasks.glue import glue_loader, glue_metrics  # noqa: E402
from tickettune.trainables.training.loop import TrainConfig, evaluate, train  # noqa: E402


def dense(args: argparse.Namespace, steps: int) -> dict:
    model, tok = load_model(args.model)
    loader = glue_loader(
        "sst2",
        "train",
        tok,
        batch_size=args.batch_size,
        max_length=args.max_length,
        max_samples=args.train_samples,
        shuffle=True,
        seed=args.seed,
        root=args.data_root,
    )
    dev = glue_loader("sst2", "dev", tok, batch_size=64, max_length=args.max_length, shuffle=False, root=args.data_root)
    result = train(model, loader, TrainConfig(lr=args.lr, max_steps=steps, seed=args.seed, progress=False))
    accuracy = evaluate(model, dev, lambda p, y: glue_metrics("sst2", p, y))["accuracy"]
    return {"accuracy": accuracy, "train_seconds": result.seconds, "steps": result.steps}


def earlybert(args: argparse.Namespace, steps: int) -> dict:
    cfg = FlowConfig(
        model=args.model,
        task="sst2",
        data_root=args.data_root,
        max_train_samples=args.train_samples,
        max_length=args.max_length,
        batch_size=args.batch_size,
        seed=args.seed,
        lr=args.lr,
        coef_lr=args.coef_lr,
        head_ratio=args.head_ratio,
        ffn_ratio=args.ffn_ratio,
        lambda_head=args.lambda_,
        lambda_ffn=args.lambda_,
        eps=args.eps,
        window=args.window,
        mask_interval=args.mask_interval,
        search_max_steps=args.search_max_steps,
        unconverged="ticket",
        ticket_steps=steps,
        ticket_lr=args.lr,
        rewind=not args.keep_trained,
        pld=args.pld_ticket,
        pld_phase="ticket",
        theta_bar=args.theta_bar,
        gamma=100.0 / steps,
    )
    r = run_flow(cfg, LocalReporter(verbose=False))
    return {
        "accuracy": r.val_metric,
        "train_seconds": r.seconds["search"] + r.seconds["ticket"],
        "search_seconds": r.seconds["search"],
        "ticket_seconds": r.seconds["ticket"],
        "search_steps": r.search_steps,
        "ticket_steps": r.ticket_steps,
        "early_bird_step": r.early_bird_step,
        "converged": r.converged,
        "relative_flops": r.relative_cost,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--data-root", default=None)
    p.add_argument("--train-samples", type=int, default=4000)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--coef-lr", type=float, default=1e-2)
    p.add_argument("--lambda", dest="lambda_", type=float, default=1e-4)
    p.add_argument("--head-ratio", type=float, default=1 / 3)
    p.add_argument("--ffn-ratio", type=float, default=0.4)
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--mask-interval", type=int, default=10)
    p.add_argument("--search-max-steps", type=int, default=200)
    p.add_argument("--keep-trained", action="store_true", help="ticket keeps the search weights (no rewind)")
    p.add_argument("--pld-ticket", action="store_true", help="progressive layer dropping while training the ticket")
    p.add_argument("--theta-bar", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = max(1, math.ceil(args.epochs * args.train_samples / args.batch_size))

    t0 = time.perf_counter()
    d = dense(args, steps)
    e = earlybert(args, steps)
    ratio = e["train_seconds"] / d["train_seconds"]
    loss_pt = 100 * (d["accuracy"] - e["accuracy"])
    rows = [
        ("dense fine-tune", d["accuracy"], d["train_seconds"], f"{d['steps']} steps"),
        (
            "EarlyBERT",
            e["accuracy"],
            e["train_seconds"],
            f"search {e['search_steps']} (early bird at {e['early_bird_step']}) + ticket {e['ticket_steps']}",
        ),
    ]
    print(f"\nSST-2, {args.train_samples} train rows, {args.epochs} epochs, full dev (872 rows)")
    print(f"{'arm':<16} {'dev acc':>8} {'train s':>8}  steps")
    for name, acc, sec, note in rows:
        print(f"{name:<16} {acc:>8.4f} {sec:>8.1f}  {note}")
    print(f"\ntotal training time ratio EarlyBERT/dense = {ratio:.3f}  ({100 * (1 - ratio):.1f}% less; target >= 35%)")
    print(f"accuracy change = {-loss_pt:+.2f} pt (target: loss <= 0.5 pt)")
    print(
        "analytic training FLOPs relative to dense = "
        f"{e['relative_flops'] * (args.search_max_steps + steps) / steps:.3f}"
    )
    out = {
        "config": vars(args),
        "dense": d,
        "earlybert": e,
        "time_ratio": ratio,
        "accuracy_loss_pt": loss_pt,
        "wall_seconds": time.perf_counter() - t0,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
