"""Early-bird savings in a search: search phases that stop when the mask converges vs a fixed search budget.

Two Ray searches over the same K trial configs (sampled once from a seeded TPE over head/FFN ratios, λs
and ε): arm `early-bird` (FlowConfig.detect=True: a trial's search phase ends when its last `window`
masks are within ε of each other) and arm `fixed` (detect=False: every search phase runs
`search_max_steps`, masks drawn at the end, as the EarlyBERT reference code does). Everything else is
equal (ticket steps, data, seeds). Reported: search-phase steps per arm and their ratio (target <= 0.5),
the best ticket's dev metric per arm, wall time per arm.

    python scripts/bench/earlybird_savings.py --size tiny                     # a couple of minutes
    python scripts/bench/earlybird_savings.py --size full --trials 4 --json bench/earlybird_savings.json  # ~45 min

Time here: ~45 min for --size full --trials 4 (950 + 1,666 s in bench/earlybird_savings.json); --size tiny a
couple of minutes
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "disabled")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms
from benchkit.replay import Replay, sample_configs

SIZES = {
    "tiny": {
        "task": "sst2",
        "scratch": {"layers": 2, "heads": 4, "hidden": 64, "ffn": 128, "tokenizer": "minilm-l6"},
        "max_train_samples": 512,
        "max_eval_samples": 128,
        "max_length": 32,
        "batch_size": 16,
        "lr": 1e-3,
        "search_max_steps": 150,
        "mask_interval": 5,
        "window": 3,
        "ticket_steps": 30,
        "min_ffn": 4,
        "unconverged": "ticket",
    },
    # SST-2 + MiniLM. The fixed budget is where the EarlyBERT reference code draws its mask: 20% of the
    # first epoch, i.e. 0.2 * 67 349 / 32 = 421 steps at batch 32; 16 000 rows so the phase never repeats data.
    # coef_lr as in spaces/demo.yaml (the slimming coefficients' own lr).
    "full": {
        "task": "sst2",
        "model": "minilm-l6",
        "max_train_samples": 16000,
        "max_eval_samples": 872,
        "max_length": 64,
        "batch_size": 32,
        "lr": 1e-4,
        "coef_lr": 1e-2,
        "search_max_steps": 420,
        "mask_interval": 10,
        "window": 4,
        "ticket_steps": 200,
        "unconverged": "ticket",
    },
}


def run_arm(
    name: str, configs: list[dict], detect: bool, root: Path, num_cpus: int | None, max_concurrent: int | None
) -> dict:
    from tickettune.searcher.export import load_trials
    from tickettune.searcher.search import run_search

    configs = [{**c, "detect": detect} for c in configs]
    spec = {
        "name": name,
        "storage": str(root),
        "search": {
            "num_samples": len(configs),
            "seed": 0,
            "scheduler": "none",
            "max_failures": 0,
            "max_concurrent": max_concurrent,
        },
        "fixed": {"task": configs[0]["task"]},
        "space": {"head_ratio": {"low": 0.2, "high": 0.5}},
    }
    t0 = time.perf_counter()
    res = run_search(spec, num_cpus=num_cpus, space=Replay(configs), export=False, verbose=0)
    wall = time.perf_counter() - t0
    trials = load_trials(root / name)
    steps = [t.last.get("search_steps") for t in trials if t.finished]
    vals = [t.metric("val_metric") for t in trials if t.finished]
    best = max((v for v in vals if math.isfinite(v)), default=math.nan)
    return {
        "arm": name,
        "detect": detect,
        "wall_s": wall,
        "statuses": res.statuses,
        "search_steps": steps,
        "mean_search_steps": statistics.mean(steps) if steps else math.nan,
        "converged": sum(bool(t.converged) for t in trials),
        "trials": len(trials),
        "early_bird_steps": [t.last.get("early_bird_step") for t in trials],
        "val_metric": vals,
        "best_val_metric": best,
        "relative_cost": [t.metric("relative_cost") for t in trials if t.finished],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", choices=sorted(SIZES), default="tiny")
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--max-concurrent", type=int, default=None)
    p.add_argument("--num-cpus", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    configs = sample_configs(args.trials, args.seed, SIZES[args.size])
    root = Path(tempfile.mkdtemp(prefix="bench-earlybird-"))
    try:
        rows = [
            run_arm("early-bird", configs, True, root, args.num_cpus, args.max_concurrent),
            run_arm("fixed", configs, False, root, args.num_cpus, args.max_concurrent),
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    eb, fixed = rows
    ratio = eb["mean_search_steps"] / fixed["mean_search_steps"]
    print()
    print(f"{'arm':<11} {'search steps (mean)':>19} {'converged':>9} {'best val':>9} {'mean cost':>9} {'wall s':>8}")
    for r in rows:
        cost = statistics.mean(r["relative_cost"]) if r["relative_cost"] else math.nan
        print(
            f"{r['arm']:<11} {r['mean_search_steps']:>19.1f} {r['converged']:>4}/{r['trials']:<4} "
            f"{r['best_val_metric']:>9.4f} {cost:>9.3f} {r['wall_s']:>8.1f}"
        )
    print(
        f"\nsearch-phase steps ratio (early-bird / fixed) = {ratio:.3f}  (target <= 0.5); "
        f"best dev metric {eb['best_val_metric']:.4f} vs {fixed['best_val_metric']:.4f}; "
        f"K={args.trials}, size {args.size}, budget {SIZES[args.size]['search_max_steps']} steps"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "size": args.size,
                    "configs": configs,
                    "rows": rows,
                    "steps_ratio": ratio,
                    "cpus": os.cpu_count(),
                    "loadavg": os.getloadavg(),
                },
                f,
                indent=1,
                default=str,
            )


if __name__ == "__main__":
    sys.exit(main())
