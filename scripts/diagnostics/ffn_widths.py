#!/usr/bin/env python
"""What an FFN of a given width costs, forward + backward, at SST-2's batch shape: does the GEMM follow the FLOPs?

A pruned FFN has the widths the masks leave, rounded to `ffn_multiple` (8 by default: 904, 920, 936 ...). This
times one FFN's two Linears (hidden -> width -> hidden, no activation) forward and backward on 32 x 18 rows
(a length-grouped SST-2 batch: 18 tokens on average), in bf16 weights (the fast path's bf16-master) and fp32,
widths interleaved round by round (this machine's speed drifts between runs), medians per width. `time_ratio`
is against the dense width, next to the FLOP ratio: where a width runs slower than its FLOPs say, rounding the
kept widths to a larger multiple (`ffn_multiple`) could buy speed at the price of a slightly other pruning ratio.

    python scripts/diagnostics/ffn_widths.py --json bench/ffn_widths.json
    python scripts/diagnostics/ffn_widths.py --smoke

Time here: not timed
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms
from benchkit.bench import cpu, finish

WIDTHS = (1536, 1024, 960, 928, 920, 904, 896, 832, 768)


def ffn_step(hidden: int, width: int, rows: int, dtype: torch.dtype):
    """A closure running one forward + backward of hidden -> width -> hidden on `rows` rows."""
    x = torch.randn(rows, hidden, dtype=dtype, requires_grad=True)
    up, down = nn.Linear(hidden, width).to(dtype), nn.Linear(width, hidden).to(dtype)
    g = torch.randn(rows, hidden, dtype=dtype)

    def step() -> None:
        down(up(x)).backward(g)
        for p in (*up.parameters(), *down.parameters(), x):
            p.grad = None

    return step


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    res = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {**cpu(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "dtypes": {},
    }
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        steps = {w: ffn_step(args.hidden, w, args.rows, dtype) for w in args.widths}
        times: dict[int, list[float]] = {w: [] for w in args.widths}
        for r in range(args.rounds + 1):
            for w in args.widths if r % 2 == 0 else args.widths[::-1]:
                for _ in range(args.reps):
                    t0 = time.perf_counter()
                    steps[w]()
                    if r:  # round 0 builds the kernels
                        times[w].append(time.perf_counter() - t0)
        dense = args.widths[0]
        base = statistics.median(times[dense])
        res["dtypes"][name] = {
            str(w): {
                "ms": 1e3 * statistics.median(times[w]),
                "time_ratio": statistics.median(times[w]) / base,
                "flop_ratio": w / dense,
            }
            for w in args.widths
        }
    return res


def print_table(res: dict) -> None:
    print(f"\n{res['machine']['model_name']}, {res['machine']['threads']} threads, {res['config']['rows']} rows")
    print(f"{'width':>6}{'flops':>7}" + "".join(f"{d + ' ms':>10}{d + ' t/d':>10}" for d in res["dtypes"]))
    for w in res["config"]["widths"]:
        rows = [res["dtypes"][d][str(w)] for d in res["dtypes"]]
        print(
            f"{w:>6}{rows[0]['flop_ratio']:>7.3f}" + "".join(f"{r['ms']:>10.2f}{r['time_ratio']:>10.3f}" for r in rows)
        )


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--widths", default=",".join(map(str, WIDTHS)), help="the first is the dense width")
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--rows", type=int, default=32 * 18)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="two widths, 1 round of 2 reps")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    try:
        args.widths = [int(w) for w in args.widths.split(",") if w.strip()]
    except ValueError:
        ap.error(f"--widths: expected comma-separated integers, got {args.widths!r}")
    if args.smoke:
        args.widths, args.rounds, args.reps = args.widths[:2], 1, 2
    if len(args.widths) < 2 or min(args.widths) < 1 or args.rounds < 1 or args.reps < 1:
        ap.error("--widths needs two or more positive widths; --rounds and --reps must be >= 1")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    return finish(run(args), args.json, print_table)


if __name__ == "__main__":
    main()
