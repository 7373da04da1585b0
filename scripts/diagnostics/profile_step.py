#!/usr/bin/env python
"""Where a real training step's time goes, dense against its ticket: what pruning shrinks and what it cannot.

MiniLM-L6 (dense) and a ticket made as the flow makes it (`benchkit.real_steps.flow_ticket`: 4/12 heads per layer and
40% of FFN neurons pruned, FFN widths to multiples of 8; FLOP ratio ~0.62), each trained by the real loop
(`train.train`) on the same real length-grouped SST-2 batches, on the path a trial takes by default
(`trainables/fast_path.py`) and on the plain one (`fast_path: false`). Per path: one untimed run per model
(every shape's kernels built), then 4 runs each under torch.profiler, dense and ticket alternating. Ops are put
in groups (matmuls, attention's batched matmuls, casts and copies, the optimizer, ...) by self CPU time per step;
the group's ticket/dense ratio says whether pruning shrinks it. Self CPU time is the calling thread's: the
profiler's own overhead is in it too, so read the shares and ratios, not the milliseconds.

    python scripts/diagnostics/profile_step.py --steps 25 --json bench/step_profile_bf16.json   # 4 x 25 steps per model
    python scripts/diagnostics/profile_step.py --smoke     # 3 steps, 640 rows

Time here: not timed
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from tickettune.trainables import fast_path
from tickettune.trainables.model.build import load_model
from tickettune.trainables.model.flops import shape_of, train_flops_per_sequence
from tickettune.trainables.training.allocator import tune_malloc
from tickettune.trainables.training.loop import TrainConfig, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms
from benchkit.bench import cpu, finish
from benchkit.real_steps import Skip1, flow_ticket, parse_real_batch_args, sst2_loader

# group -> op-name prefixes (the first group that matches takes the op)
GROUPS = {
    "matmul (Linear)": ("aten::mm", "aten::addmm", "aten::linear", "aten::matmul"),
    "attention (bmm, softmax, sdpa)": ("aten::bmm", "aten::_softmax", "aten::_scaled_dot_product", "aten::baddbmm"),
    "casts and copies": ("aten::copy_", "aten::_to_copy", "aten::to", "aten::clone", "aten::contiguous"),
    "optimizer (AdamW, clipping)": ("aten::_fused_adamw", "Optimizer.", "aten::linalg_vector_norm", "aten::_foreach"),
    "gelu, layer norm": ("aten::gelu", "aten::native_layer_norm", "aten::layer_norm"),
    "dropout": ("aten::bernoulli", "aten::native_dropout", "aten::dropout"),
    "data (collation)": ("enumerate(DataLoader)",),
    "embedding": ("aten::embedding", "aten::index_select", "aten::embedding_dense_backward"),
}


def group_of(key: str) -> str:
    for name, prefixes in GROUPS.items():
        if key.startswith(prefixes):
            return name
    return "other ops (elementwise, views, autograd bookkeeping)"


def profiled(models: dict, loader, steps: int, rounds: int, levers: dict) -> dict[str, dict[str, float]]:
    """{model: {op: self CPU ms per step}} over `rounds` runs of `steps` steps of the real loop per model, the
    models alternating which goes first (this machine's speed drifts between runs: alternation spreads it over
    both), after one untimed run each (every shape's kernels built)."""
    cfg = TrainConfig(lr=1e-5, max_steps=steps, progress=False, **levers)
    out: dict[str, dict[str, float]] = {name: {} for name in models}
    for r in range(rounds + 1):
        for name in list(models) if r % 2 == 0 else list(models)[::-1]:
            loader.generator.manual_seed(0)
            m = copy.deepcopy(models[name]).train()
            if r == 0:
                train(m, Skip1(loader, steps), cfg)
                continue
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                train(m, Skip1(loader, steps), cfg)
            for e in prof.key_averages():
                out[name][e.key] = out[name].get(e.key, 0.0) + e.self_cpu_time_total / 1e3 / (steps * rounds)
    return out


def table(dense: dict[str, float], ticket: dict[str, float]) -> dict:
    groups: dict[str, dict] = {}
    for side, ops in (("dense_ms", dense), ("ticket_ms", ticket)):
        for key, ms in ops.items():
            g = groups.setdefault(group_of(key), {"dense_ms": 0.0, "ticket_ms": 0.0})
            g[side] += ms
    total = {k: sum(g[k] for g in groups.values()) for k in ("dense_ms", "ticket_ms")}
    for g in groups.values():
        g["ratio"] = g["ticket_ms"] / g["dense_ms"] if g["dense_ms"] else float("nan")
        g["dense_share"] = g["dense_ms"] / total["dense_ms"]
        g["ticket_share"] = g["ticket_ms"] / total["ticket_ms"]
    top = sorted(dense, key=lambda k: -dense[k])[:15]
    return {
        "total": {**total, "ratio": total["ticket_ms"] / total["dense_ms"]},
        "groups": dict(sorted(groups.items(), key=lambda kv: -kv[1]["dense_ms"])),
        "top_ops": {k: {"dense_ms": dense[k], "ticket_ms": ticket.get(k, 0.0)} for k in top},
    }


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    tune_malloc()
    torch.manual_seed(0)
    dense, tok = load_model("minilm-l6", head="classification", num_labels=2)
    ticket = flow_ticket(dense, 0)
    loader = sst2_loader(tok, args.data_root, args.train_samples)
    res = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {**cpu(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "flop_ratio_at_16": train_flops_per_sequence(shape_of(ticket), 16)
        / train_flops_per_sequence(shape_of(dense), 16),
        "paths": {},
    }
    for path, plain in (("fast_path", False), ("plain", True)):
        lv = fast_path.resolve(None, None, None, plain=plain, device="cpu")
        levers = {"precision": lv.precision, "embeddings": lv.embeddings, "dropout": lv.dropout}
        res["paths"][path] = {
            "levers": levers,
            **table(*profiled({"dense": dense, "ticket": ticket}, loader, args.steps, args.rounds, levers).values()),
        }
    return res


def print_table(res: dict) -> None:
    m = res["machine"]
    print(f"\n{m['model_name']}, {m['threads']} threads; FLOP ratio at 16 tokens {res['flop_ratio_at_16']:.3f}")
    for path, p in res["paths"].items():
        t = p["total"]
        print(
            f"\n{path} {p['levers']}: self CPU / step dense {t['dense_ms']:.1f} ms, ticket {t['ticket_ms']:.1f} ms, "
            f"ticket/dense {t['ratio']:.3f}"
        )
        print(f"{'group':<52}{'dense ms':>9}{'ticket ms':>10}{'t/d':>7}{'dense %':>8}{'ticket %':>9}")
        for name, g in p["groups"].items():
            print(
                f"{name:<52}{g['dense_ms']:>9.1f}{g['ticket_ms']:>10.1f}{g['ratio']:>7.2f}"
                f"{100 * g['dense_share']:>8.1f}{100 * g['ticket_share']:>9.1f}"
            )


def parse_args(argv=None) -> argparse.Namespace:
    args = parse_real_batch_args(__doc__, argv, steps=25, smoke_steps=3, min_steps=1)
    args.rounds = 1 if args.smoke else 4
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    return finish(run(args), args.json, print_table)


if __name__ == "__main__":
    main()
