#!/usr/bin/env python
"""The Ray tax, like for like: tickettune's dense trial on the plain path (`fast_path: false`, HF's settings) against
HF `Trainer`'s trial step, each run 2 at a time, same batches, same threads; steady-state ms/step medians.

Arms (each: two runs side by side, --threads torch threads each, the task's real length-grouped train batches from
tickettune's loader, the same batches in the same order on both sides):

* ``hf_process``    — HF ``Trainer.train`` (stock model, sdpa), two spawned processes: the HF search's trial
* ``tt_process``    — tickettune's dense trial (`run_flow`, ``baseline: true``), two spawned processes
* ``tt_thread``     — the same, the flow in a second thread of each process, as Tune's function trainable runs it
* ``tt_ray``        — the same two trials through `run_search` (what `tickettune search` runs): Ray Tune, 2 at a time
* ``tt_ray_nodash`` — the same, Ray started without its dashboard
* ``tt_ray_nice15`` — the same, the trials at Ray's own worker niceness 15 (before ray_session set 0)

A window is the time between two reports of a run (every `report_interval` steps; HF is marked at the same steps),
so a tickettune window holds its steps and one report; only windows while both runs trained count, the first of
each run dropped. Per arm: medians of wall-clock, process CPU and the training thread's CPU per step, the facts of
every run (torch threads, OMP/MKL variables, affinity, the CPU each OS thread burned) and where the machine's CPU
went meanwhile (benchkit/cpu_share.py: the training processes, the rest of the benchmark's tree, other work).

``dense_step_ratio`` = tt_ray / hf_process (what a search's trial pays against HF's, the issue's target <= 1.05);
``plain_step_ratio`` = tt_process / hf_process; ``ray_vs_process`` = tt_ray / tt_process; the other ratios name one
change each (benchkit/concurrent_arms.py RATIOS). Wall-clock is what a search pays; the training thread's CPU per
step is steadier on a shared machine (another VM's load shows as wall-clock only).

    python scripts/bench/concurrent_step.py --task cola --steps 100 --json bench/concurrent_step.json
    python scripts/bench/concurrent_step.py --task cola --steps 60 --arms hf_process,tt_ray,tt_ray_nice15 --competitor
    python scripts/bench/concurrent_step.py --smoke --json /tmp/tax.json
    python scripts/bench/concurrent_step.py --reanalyse bench/concurrent_step.json  # figures from its records

Time here: ~6 min at --steps 100 (MiniLM, CoLA, 1 thread each on 2 cores); --smoke ~2 min
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms

from benchkit.bench import finish
from benchkit.concurrent_arms import ARMS, SMOKE, measure, reanalyse


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="cola")
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--steps", type=int, default=100, help="optimizer steps per run")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run (two runs at a time)")
    ap.add_argument("--report-interval", type=int, default=10, help="the flow's; HF is marked as often")
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--train-samples", type=int, default=None, help="default: the whole train split")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--rounds", type=int, default=1, help="the arms this many times, alternating their order")
    ap.add_argument(
        "--competitor", action="store_true", help="one more process spins on a core (nice 0) during every arm"
    )
    ap.add_argument("--smoke", action="store_true", help=f"{SMOKE['steps']} small steps per run")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--reanalyse", type=Path, default=None, help="a saved --json: its figures again from its records")
    args = ap.parse_args(argv)
    if args.smoke:
        args.steps, args.report_interval = SMOKE["steps"], SMOKE["report_interval"]
        args.max_length, args.batch_size = SMOKE["max_length"], SMOKE["batch_size"]
        args.train_samples = args.train_samples or SMOKE["train_samples"]
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = [a for a in args.arms if a not in ARMS]
    if bad:
        ap.error(f"--arms: {bad} not among {list(ARMS)}")
    if args.steps < 3 * args.report_interval:
        ap.error(f"--steps {args.steps}: needs >= 3 x --report-interval ({args.report_interval}) for one window")
    if args.threads < 1 or args.rounds < 1:
        ap.error("--threads and --rounds must be >= 1")
    return args


def print_table(res: dict) -> None:
    m = res["machine"]
    print(f"{m['model_name']}, {res['config']['threads']} thread(s) per run, 2 runs at a time; medians per step")
    print(f"  {'arm':<15}{'wall ms':>9}{'cpu ms':>9}{'thread ms':>11}{'windows':>9}  cores: training / other / foreign")
    for arm, a in res["arms"].items():
        if a["wall_ms"] is None:
            print(f"  {arm:<15}{'no window':>9}")
            continue
        shares = [r["cpu_share"]["cores"] for r in a["rounds"]]
        cores = " | ".join(
            f"{s.get('training', 0):.2f} / {s.get('benchmark_other', 0):.2f} / {s.get('foreign', 0):.2f}"
            for s in shares
        )
        print(
            f"  {arm:<15}{a['wall_ms']:>9.1f}{a['cpu_ms']:>9.1f}{a['thread_cpu_ms']:>11.1f}{a['windows']:>9}  {cores}"
        )
    print("  " + ", ".join(f"{k} {v:.3f}" for k, v in res["ratios"].items() if v is not None))


def main(argv=None) -> dict:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parse_args(argv)
    if args.reanalyse:
        return finish(reanalyse(json.loads(args.reanalyse.read_text())), args.json or args.reanalyse, print_table)
    return finish(measure(args), args.json, print_table)


if __name__ == "__main__":
    main()
