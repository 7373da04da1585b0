"""Where the synthetic ticket/dense step ratio (one fixed shape, bench/ticket_speed.py) turns into the real epoch's.

Each arm takes the real loop (train.train) a step further from bench/ticket_speed.py's synthetic step, on the same
dense model and the same flow-made ticket (slimming coefficients attached, masks drawn, make_ticket(continue):
coefficients folded, no hooks), so the arm-to-arm change in ticket/dense names one cause:

* ``bare_fixed``   — ticket_speed.py's step (forward, backward, clip, AdamW, zero_grad) on batches of one
  shape: the mean padded length of the real batches.
* ``bare_real``    — the same bare step on the real batches (same lengths sequence), pre-collated: shapes.
* ``loop_real``    — train.train on the pre-collated batches with the flow's callbacks: the loop's Python,
  the per-step ``loss.item()``, callbacks.
* ``loader_real``  — train.train on the real DataLoader (collation each step): what the flow runs.
* ``*_malloc``     — the same after glibc's allocator keeps freed memory (allocator.tune_malloc), as
  ticket_speed.py always does and the real loop did not.

The first real batch (the longest, by the sampler's design) is skipped: the N batches after it are one
mega-batch of the length-grouped order, i.e. a fair sample of the epoch's lengths.

A module, not a script: `bench/fast_path.py --gap` runs `measure_gap` before its ablation.

    python scripts/bench/fast_path.py --gap --steps 100 --rounds 2 --threads 2 --json bench/fast_path.json

Time here: not timed; it runs as the first part of `bench/fast_path.py --gap`
"""

from __future__ import annotations

import copy
import statistics
import sys
from pathlib import Path

import torch

from tickettune.trainables.training.precision import Precision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms
from benchkit.real_steps import Skip1, bare_steps, loop_steps


def fixed_like(batches: list[dict], length: int) -> list[dict]:
    """The same sentences padded / cut to one length (attention mask kept consistent)."""
    out = []
    for b in batches:
        t = b["input_ids"].shape[1]
        nb = {}
        for k, v in b.items():
            if v.ndim == 2:
                v = v[:, :length] if t >= length else torch.nn.functional.pad(v, (0, length - t))
            nb[k] = v
        out.append(nb)
    return out


def measure_gap(dense, ticket, loader, n: int, precision: str, rounds: int, malloc) -> dict:
    """ticket/dense per arm, medians over steps, arms alternating dense/ticket over one untimed round (kernels
    built) and then `rounds` timed ones."""
    amp = Precision.of(precision, "cpu")

    def same_batches() -> Skip1:  # the loader's batches in the same order on every pass (same shapes)
        loader.generator.manual_seed(0)
        return Skip1(loader, n)

    real = list(same_batches())
    mean_len = round(statistics.fmean(b["input_ids"].shape[1] for b in real))
    fixed = fixed_like(real, mean_len)
    seq = max(b["input_ids"].shape[1] for b in real)
    arms = {
        "bare_fixed": lambda m: bare_steps(m, fixed, amp),
        "bare_real": lambda m: bare_steps(m, real, amp),
        "loop_real": lambda m: loop_steps(m, real, n, precision, seq, 32),
        "loader_real": lambda m: loop_steps(m, same_batches(), n, precision, seq, 32),
    }
    res: dict = {
        "steps": n,
        "mean_padded_length": mean_len,
        "distinct_lengths": len({b["input_ids"].shape[1] for b in real}),
        "arms": {},
    }
    for phase in ("", "_malloc"):
        if phase:
            res["malloc_tuned"] = malloc()
        for arm, fn in arms.items():
            times = {"dense": [], "ticket": []}
            for r in range(rounds + 1):  # round 0 untimed: it builds each shape's kernels (once per epoch for real)
                for name in ("dense", "ticket") if r % 2 == 0 else ("ticket", "dense"):
                    m = copy.deepcopy(dense if name == "dense" else ticket).train()
                    steps = fn(m)
                    warm = min(3, len(steps) - 1)  # the first steps warm the allocator (a smoke run keeps one)
                    if r:
                        times[name] += steps[warm:]
            row = {}
            for i, kind in enumerate(("wall", "cpu")):
                d = [x[i] for x in times["dense"]]
                t = [x[i] for x in times["ticket"]]
                row[kind] = {
                    "dense_ms": 1e3 * statistics.median(d),
                    "ticket_ms": 1e3 * statistics.median(t),
                    "ratio": statistics.median(t) / statistics.median(d),
                    "mean_ratio": statistics.fmean(t) / statistics.fmean(d),
                }
            res["arms"][arm + phase] = row
            c, w = row["cpu"], row["wall"]
            print(
                f"  gap {arm + phase:<18} cpu: dense {c['dense_ms']:6.1f} ms ticket {c['ticket_ms']:6.1f} ms "
                f"ratio {c['ratio']:.3f} (sum {c['mean_ratio']:.3f}) | wall ratio {w['ratio']:.3f} "
                f"(sum {w['mean_ratio']:.3f})",
                flush=True,
            )
    return res


if __name__ == "__main__":
    sys.exit("step_gap.py is a module; its measurement runs as: python scripts/bench/fast_path.py --gap [--smoke]")
