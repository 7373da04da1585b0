#!/usr/bin/env python
"""Does bf16 autocast cost accuracy? The same fine-tune (same seeds, same batches) in fp32 and in bf16.

MiniLM on SST-2 train rows (a seeded subset), scored on the whole SST-2 dev set; per seed both precisions
see identical data order and initialisation, so the difference is the arithmetic alone. Also reports
each run's training time (an indication only: use bench/ticket_speed.py for step times).

    python scripts/bench/bf16_accuracy.py --train-samples 4000 --epochs 2 --seeds 3 --json bench/bf16_accuracy.json

Time here: not timed as a whole (its six runs' training alone: ~4 min in bench/bf16_accuracy.json)
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

from tickettune.trainables.model.build import load_model
from tickettune.trainables.tasks import DataArgs, get_task
from tickettune.trainables.training.loop import TrainConfig, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms
from benchkit.bench import finish


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--train-samples", type=int, default=4000)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--json", type=Path, default=None)
    return ap.parse_args(argv)


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    runs = {p: [] for p in precisions}
    for seed in range(args.seeds):
        for p in precisions:
            torch.manual_seed(seed)
            model, tok = load_model(args.model, head="classification", num_labels=2)
            task = get_task("sst2")
            data = DataArgs(
                root=args.data_root,
                max_length=args.max_length,
                batch_size=args.batch_size,
                max_train_samples=args.train_samples,
                seed=seed,
                group_by_length=True,
            )
            train_loader, dev = task.train_loader(tok, data), task.eval_data(tok, data)
            res = train(
                model, train_loader, TrainConfig(lr=args.lr, epochs=args.epochs, seed=seed, progress=False, precision=p)
            )
            acc = task.evaluate(model, dev, p)["accuracy"]
            runs[p].append(
                {
                    "seed": seed,
                    "accuracy": acc,
                    "steps": res.steps,
                    "train_seconds": res.seconds,
                    "final_loss": statistics.fmean(res.losses[-20:]),
                }
            )
            print(f"seed {seed} {p}: dev accuracy {acc:.4f} ({res.steps} steps, {res.seconds:.0f}s)", flush=True)
    mean = {p: statistics.fmean(r["accuracy"] for r in rs) for p, rs in runs.items()}
    out = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "runs": runs,
        "mean_accuracy": mean,
    }
    if "fp32" in mean and "bf16" in mean:
        out["bf16_minus_fp32_pt"] = 100 * (mean["bf16"] - mean["fp32"])
        out["per_seed_diff_pt"] = [100 * (b["accuracy"] - f["accuracy"]) for f, b in zip(runs["fp32"], runs["bf16"])]
        out["meets_target"] = abs(out["bf16_minus_fp32_pt"]) <= 0.5
    return out


def print_table(res: dict) -> None:
    for p, acc in res["mean_accuracy"].items():
        print(f"{p}: mean dev accuracy {acc:.4f} over {len(res['runs'][p])} seeds")
    if "bf16_minus_fp32_pt" in res:
        print(
            f"bf16 - fp32: {res['bf16_minus_fp32_pt']:+.2f} pt "
            f"(per seed {[round(d, 2) for d in res['per_seed_diff_pt']]});"
            f" target within 0.5 pt: {'met' if res['meets_target'] else 'NOT met'}"
        )


def main(argv=None) -> dict:
    args = parse_args(argv)
    return finish(run(args), args.json, print_table)


if __name__ == "__main__":
    main()
