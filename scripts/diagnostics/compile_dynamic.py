#!/usr/bin/env python
"""torch.compile with dynamic shapes on the real training loop: one graph for every length, and what it costs.

The flow's `compile: true` compiles static shapes (lengths padded to 8): ~9 graphs per model per SST-2 epoch,
each an inductor C++ build (`bench/compile_probe_bf16.json`: 301 s against 26 s eager over 125 steps). This
measures the other way: `torch.compile(model, dynamic=True)`, MiniLM and a flow-made ticket (`benchkit.real_steps`), the
real loop on real length-grouped SST-2 batches at exact lengths, on the fast path's levers, eager and compiled
alternating (eager, dynamic, eager, dynamic per model): the first step's seconds (the compile), the median step
after it, graphs compiled. The second compiled run of a model reuses the first one's graph (dynamo's cache).
Inductor's on-disk cache is a fresh temporary folder unless --cache-dir names one (a warm cache from an earlier
run turns a 60 s compile into a few seconds: what the trials of one search get for the shapes they share).

    python scripts/diagnostics/compile_dynamic.py --steps 80 --json bench/compile_dynamic_bf16.json
    python scripts/diagnostics/compile_dynamic.py --smoke

Time here: not timed as a whole (its 8 runs of 80 steps: 145 s in bench/compile_dynamic_bf16.json)
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from tickettune.trainables import fast_path
from tickettune.trainables.model.build import load_model
from tickettune.trainables.training import loop
from tickettune.trainables.training.allocator import tune_malloc
from tickettune.trainables.training.compile_step import use_cache_dir
from tickettune.trainables.training.loop import TrainConfig, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms
from benchkit.bench import cpu, finish
from benchkit.real_steps import Skip1, StepTimer, flow_ticket, parse_real_batch_args, sst2_loader


class Dynamic:
    """The loop's forward as torch.compile(dynamic=True) of the model: the length is symbolic from the start."""

    def __init__(self, model):
        self.fn = torch.compile(model, dynamic=True)

    def __call__(self, **batch):
        return self.fn(**batch)


def graphs() -> int:
    from torch._dynamo import utils

    return int(utils.counters["stats"]["unique_graphs"])


def one_run(model, loader, steps: int, levers: dict, dynamic: bool) -> dict:
    eager = loop._forward
    loop._forward = (lambda m, cfg: Dynamic(m)) if dynamic else eager
    try:
        timer, g0 = StepTimer(), graphs()
        loader.generator.manual_seed(0)
        t0 = time.perf_counter()
        train(
            copy.deepcopy(model).train(),
            Skip1(loader, steps),
            TrainConfig(lr=1e-5, max_steps=steps, progress=False, **levers),
            [timer],
        )
        wall = time.perf_counter() - t0
    finally:
        loop._forward = eager
    return {
        "wall_s": wall,
        "first_step_s": timer.times[0][0],
        "median_step_ms": 1e3 * statistics.median(t[0] for t in timer.times[min(3, len(timer.times) - 1) :]),
        "new_graphs": graphs() - g0,
    }


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    use_cache_dir(args.cache_dir or tempfile.mkdtemp(prefix="inductor-"))  # cold unless asked otherwise
    tune_malloc()
    torch.manual_seed(0)
    dense, tok = load_model("minilm-l6", head="classification", num_labels=2)
    ticket = flow_ticket(dense, 0)
    loader = sst2_loader(tok, args.data_root, args.train_samples)
    lv = fast_path.resolve(None, None, None, plain=False, device="cpu")
    levers = {"precision": lv.precision, "embeddings": lv.embeddings, "dropout": lv.dropout}
    res = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {**cpu(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "levers": levers,
        "models": {},
    }
    for name, model in (("dense", dense), ("ticket", ticket)):
        runs = [one_run(model, loader, args.steps, levers, dynamic) for dynamic in (False, True, False, True)]
        eager, compiled = runs[2], runs[3]  # the second of each: kernels built, the graph compiled once
        res["models"][name] = {
            "runs": runs,
            "compile_first_step_s": runs[1]["first_step_s"],
            "graphs_first_compiled_run": runs[1]["new_graphs"],
            "graphs_second_compiled_run": runs[3]["new_graphs"],
            "steady_compiled_over_eager": compiled["median_step_ms"] / eager["median_step_ms"],
        }
    d, t = res["models"]["dense"], res["models"]["ticket"]
    res["ticket_over_dense_eager"] = t["runs"][2]["median_step_ms"] / d["runs"][2]["median_step_ms"]
    res["ticket_over_dense_compiled"] = t["runs"][3]["median_step_ms"] / d["runs"][3]["median_step_ms"]
    return res


def print_table(res: dict) -> None:
    print(f"\n{res['machine']['model_name']}, {res['machine']['threads']} threads, levers {res['levers']}")
    print(f"{'model':<8}{'eager ms':>9}{'dyn ms':>8}{'dyn/eager':>10}{'compile s':>10}{'graphs':>7}{'reused':>7}")
    for name, m in res["models"].items():
        print(
            f"{name:<8}{m['runs'][2]['median_step_ms']:>9.1f}{m['runs'][3]['median_step_ms']:>8.1f}"
            f"{m['steady_compiled_over_eager']:>10.3f}{m['compile_first_step_s']:>10.1f}"
            f"{m['graphs_first_compiled_run']:>7}{m['graphs_second_compiled_run'] == 0!s:>7}"
        )
    print(f"ticket/dense: eager {res['ticket_over_dense_eager']:.3f}, compiled {res['ticket_over_dense_compiled']:.3f}")


def parse_args(argv=None) -> argparse.Namespace:
    return parse_real_batch_args(
        __doc__,
        argv,
        steps=80,
        smoke_steps=4,
        min_steps=2,
        extra=[("--cache-dir", "inductor's cache (default: fresh)")],
    )


def main(argv=None) -> dict:
    args = parse_args(argv)
    return finish(run(args), args.json, print_table)


if __name__ == "__main__":
    main()
