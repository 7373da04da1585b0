"""Under load: many tiny trials, several at a time, on a two-node Ray cluster on this machine: what the search's
driver costs per trial.

The cluster is two `ray start` nodes of `--cpus` logical CPUs each (local_cluster.py); the search is `tickettune
search SPEC --address` in a process of its own, the real flow on a tiny random BERT on the shared SST-2 data,
W&B off, one worker per trial (inline), `--concurrent` trials at once. A search of `--small` trials and one
of `--trials` run on the same cluster, after a warm-up search; per extra trial of the large one (what every
search pays once, the driver's imports, joining, the storage check, the export, cancels out):

* driver CPU: the `tickettune search` process's user + system CPU seconds (its rusage at exit: Tune's
  controller, Optuna, the result and state files);
* idle slot time: (wall x trials at once - the trials' own times, Tune's ``time_total_s``): how long the
  concurrent slots sat without a trial (trial start-up, scheduling, the driver's work between a trial's end
  and the next one's start).

The logical CPUs may exceed the machine's cores (4 trials at once on 2 cores here): the trials then run
slower, which the idle slot time does not count (it is measured against the trials' own times).

    python scripts/bench/cluster_load.py --json bench/cluster_load.json

Time here: not timed
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms
from benchkit.bench import finish
from benchkit.local_cluster import LocalCluster, write_search_config

TICKETTUNE = str(Path(sys.executable).with_name("tickettune"))
FLOW = {
    "task": "sst2",
    "max_train_samples": 256,
    "max_eval_samples": 64,
    "max_length": 32,
    "batch_size": 16,
    "lr": 1.0e-3,
    "search_max_steps": 20,
    "mask_interval": 5,
    "window": 3,
    "ticket_steps": 40,
    "min_ffn": 4,
    "unconverged": "ticket",
}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--small", type=int, default=8, help="the trials of the search subtracted from it")
    ap.add_argument("--concurrent", type=int, default=4)
    ap.add_argument("--cpus", type=int, default=2, help="logical CPUs per node (two nodes)")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--json", type=Path, default=None)
    return ap.parse_args(argv)


def wait_with_rusage(proc: subprocess.Popen, timeout: float):
    """The process's exit status and its own rusage (os.wait4: Popen would reap it without one)."""
    deadline = time.time() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.time() > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.5)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    return status, usage


def one_search(
    cluster: LocalCluster, root: Path, model: Path, trials: int, args: argparse.Namespace, name: str = ""
) -> dict:
    """`tickettune search --address` of `trials` trials: wall, the driver's CPU, the trials' own times."""
    from tickettune.searcher.export import load_trials

    name = name or f"load-{trials}"
    config = write_search_config(
        root,
        name,
        model,
        trials,
        FLOW,
        {"head_ratio": {"low": 0.2, "high": 0.5}, "ffn_ratio": {"low": 0.2, "high": 0.5}},
        workers_per_trial=1,
        cpus_per_worker=1.0,
        max_concurrent=args.concurrent,
        max_failures=0,
    )
    with open(root / f"{name}.log", "w") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [TICKETTUNE, "search", str(config), "--address", cluster.address],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=cluster.env(WANDB_MODE="disabled"),
        )
        status, usage = wait_with_rusage(proc, args.timeout)
        wall = time.perf_counter() - t0
    done = load_trials(root / "runs" / name)
    trial_s = [t.last.get("time_total_s", 0.0) for t in done]
    return {
        "trials": len(done),
        "exit": os.waitstatus_to_exitcode(status),
        "statuses": {s: sum(t.status == s for t in done) for s in {t.status for t in done}},
        "wall_s": round(wall, 2),
        "trial_s_sum": round(sum(trial_s), 2),
        "trial_s_mean": round(sum(trial_s) / max(1, len(done)), 2),
        "driver_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "log": (root / f"{name}.log").read_text(errors="replace").strip().splitlines()[-1:],
    }


def run(args: argparse.Namespace) -> dict:
    """A small and a large search on the same cluster: the difference is what the extra trials cost, without
    what every search pays once (the driver's imports, joining the cluster, the storage check, the export)."""
    from tickettune.trainables.testing.random_models import write_random_model

    root = Path(tempfile.mkdtemp(prefix="ttl-", dir="/tmp"))  # short: Ray's socket paths live under it
    cluster = LocalCluster(root, cpus_per_node=args.cpus)
    try:
        model = write_random_model("bert", root / "model", "tiny")
        cluster.start_head()
        cluster.add_worker()
        time.sleep(2)
        # first, a search nobody measures: the first trials on a fresh machine run 2-3x slower (page cache,
        # the data's cache), which would land in the small search alone
        warmup = one_search(cluster, root, model, args.concurrent, args, name="warmup")
        small, large = (one_search(cluster, root, model, n, args) for n in (args.small, args.trials))
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    extra = large["trials"] - small["trials"]
    slots = args.concurrent
    return {
        "what": f"{args.small} and {args.trials} tiny trials, {slots} at a time, two nodes x {args.cpus} logical CPUs",
        "flow": FLOW,
        "warmup": warmup,
        "small": small,
        "large": large,
        "per_extra_trial": {
            "driver_cpu_s": round((large["driver_cpu_s"] - small["driver_cpu_s"]) / extra, 3),
            "wall_s": round((large["wall_s"] - small["wall_s"]) / extra, 3),
            "idle_slot_s": round(
                ((large["wall_s"] - small["wall_s"]) * slots - (large["trial_s_sum"] - small["trial_s_sum"])) / extra,
                3,
            ),
            "trial_s": round((large["trial_s_sum"] - small["trial_s_sum"]) / extra, 3),
        },
    }


def print_table(res: dict) -> None:
    print(res["what"])
    for side in ("warmup", "small", "large"):
        r = res[side]
        print(
            f"  {r['trials']:>3} trials: wall {r['wall_s']:.1f} s, driver CPU {r['driver_cpu_s']:.1f} s, "
            f"trial mean {r['trial_s_mean']:.2f} s, {r['statuses']}"
        )
    print("  per extra trial: " + ", ".join(f"{k} {v}" for k, v in res["per_extra_trial"].items()))


def main(argv=None) -> dict:
    args = parse_args(argv)
    return finish(run(args), args.json, print_table)


if __name__ == "__main__":
    main()
