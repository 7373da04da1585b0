"""Lose a node, lose nothing: real searches on a two-node Ray cluster on this machine, under faults.

The cluster is started as a user would (`ray start --head`, `ray start --address`; one CPU per node, no token
auth), and every search is `tickettune search SPEC --address` in a process of its own, with W&B offline: the
real flow (`trainables.flow.run_flow`) on the shared SST-2 data, on a tiny random BERT saved with
`save_pretrained` and loaded through the real path. The faults:

* reference: no fault (one worker per trial, two trials at once): what the faulted searches are compared with.
* node, inline: one-worker trials, one per node; once a trial on the worker node has reported ticket-phase
  progress (its search checkpoint is behind it), the worker node is lost (SIGKILL to its raylet, workers and
  agents: local_cluster.py) and not brought back: the rest must finish on the head.
* node, ddp: two-worker trials (DDP over gloo, one worker per node); the worker node is lost mid ticket phase
  and a new node joins `--back` seconds later.
* driver: the `tickettune search` process is SIGKILLed right after a trial's final report, while another is
  past its search (Tune saves its state every 5 s: the finished trial may still be RUNNING there); then
  `tickettune resume EXPERIMENT --address` on the same cluster.

What each fault cost is read from the experiment's files afterwards (benchkit/chaos_measure.py); `--json`
writes one entry per fault under ``faults``. A faulted search whose trials match the reference's (same seed,
same configs) also gets ``same_as_reference``: every trial of the same config ended with the same val_metric,
and the same config was exported.

    python scripts/bench/chaos_search.py --json bench/chaos.json
    python scripts/bench/chaos_search.py --smoke                      # node (inline) + driver faults only

Run it alone on the machine: it starts Ray nodes of its own (and ends only those).

Time here: ~10 min (607 s for bench/chaos.json); --smoke ~3.5 min (207 s)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: the root of benchkit and the rooms
from benchkit.bench import finish
from benchkit.chaos_measure import measure
from benchkit.local_cluster import LocalCluster, write_search_config

TICKETTUNE = str(Path(sys.executable).with_name("tickettune"))
FLOW = {  # a few seconds of search, then a ticket phase long enough to be hit (~10-20 s here)
    "task": "sst2",
    "max_train_samples": 512,
    "max_eval_samples": 128,
    "max_length": 32,
    "batch_size": 16,
    "lr": 1.0e-3,
    "search_max_steps": 40,
    "mask_interval": 5,
    "window": 3,
    "report_interval": 50,
    "min_ffn": 4,
    "unconverged": "ticket",
}
SPACE = {"head_ratio": {"low": 0.2, "high": 0.5}, "ffn_ratio": {"low": 0.2, "high": 0.5}}
FAULTS = ("reference", "node-inline", "node-ddp", "driver")
SMOKE = "node-inline,driver"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--smoke", action="store_true", help="node (inline) and driver faults only, fewer trials")
    ap.add_argument("--faults", default=",".join(FAULTS), help=f"which of {','.join(FAULTS)} (--smoke: {SMOKE})")
    ap.add_argument("--trials", type=int, default=4, help="trials per one-worker search (DDP: half)")
    ap.add_argument("--ticket-steps", type=int, default=1500)
    ap.add_argument("--back", type=float, default=10.0, help="seconds until a new node replaces the lost one (ddp)")
    ap.add_argument("--timeout", type=float, default=600.0, help="per search, seconds")
    ap.add_argument("--keep", type=Path, default=None, help="copy the experiments and logs here")
    return ap.parse_args(argv)


# ------------------------------------------------------------------------------------------------ one search


def write_spec(root: Path, name: str, model: Path, workers: int, trials: int, ticket_steps: int) -> Path:
    return write_search_config(
        root,
        name,
        model,
        trials,
        {**FLOW, "ticket_steps": ticket_steps},
        SPACE,
        workers_per_trial=workers,
        # DDP: 0.9 of each 1-CPU node, so that the trial's driver (0.01 CPU) fits beside a worker
        cpus_per_worker=1.0 if workers == 1 else 0.9,
        max_failures=2,
        wandb_project="tickettune-chaos",
    )


class Driver:
    """`tickettune search|resume ... --address` in a session of its own (so that a SIGKILL takes all of it)."""

    started_here: list[Driver] = []  # every driver of this run: ended with the cluster, whatever happens

    def __init__(self, cluster: LocalCluster, log: Path, *args: str):
        self.log = log
        self.started = time.time()
        env = cluster.env(WANDB_MODE="offline", WANDB_SILENT="true")
        env.pop("WANDB_DIR", None)
        with open(log, "a") as out:
            self.proc = subprocess.Popen(
                [TICKETTUNE, *args, "--address", cluster.address],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        Driver.started_here.append(self)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=max(1.0, timeout - (time.time() - self.started)))
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def tail(self, n: int = 3) -> list[str]:
        return self.log.read_text(errors="replace").strip().splitlines()[-n:]


def wandb_dropped(log: Path) -> int:
    """Results W&B refused as the search's log shows them (a step below one it had logged)."""
    return log.read_text(errors="replace").count("that is less than the current step")


def running(exp: Path) -> dict[str, list[dict]]:
    """Trials that have reported and not finished: id -> reports so far (read as the driver writes them)."""
    from tickettune.searcher.export import load_trials

    if not exp.is_dir():
        return {}
    try:
        trials = load_trials(exp)
    except (OSError, ValueError, KeyError):
        return {}
    return {t.trial_id: t.history for t in trials if t.history and not t.finished}


def finished(exp: Path) -> set[str]:
    """Trials whose final report (flow_done) is in their result.json."""
    from tickettune.searcher.export import load_trials

    try:
        return {t.trial_id for t in load_trials(exp) if t.finished} if exp.is_dir() else set()
    except (OSError, ValueError, KeyError):
        return set()


def past_search(history: list[dict]) -> bool:
    """A ticket-phase report with a loss: trained past the search checkpoint (flow.py's first ticket report)."""
    return any(r.get("phase") == "ticket" and "loss" in r for r in history)


def wait_for(cond, driver: Driver, timeout: float, poll: float = 0.25):
    """cond() until it returns something truthy (returned), the driver exits or `timeout` passes (None)."""
    deadline = time.time() + timeout
    while time.time() < deadline and driver.proc.poll() is None:
        got = cond()
        if got:
            return got
        time.sleep(poll)
    return None


# ---------------------------------------------------------------------------------------------- the faults


def ensure_workers(cluster: LocalCluster, n: int = 1) -> None:
    while len(cluster.workers()) < n:
        cluster.add_worker()
    time.sleep(2)  # the node registers its resources with the GCS


def run_reference(cluster, root, model, args, trials) -> dict:
    ensure_workers(cluster)
    spec = write_spec(root, "reference", model, 1, trials, args.ticket_steps)
    d = Driver(cluster, root / "reference.log", "search", str(spec))
    rc = d.wait(args.timeout)
    exp = root / "runs" / "reference"
    seconds = round(time.time() - d.started, 1)
    return {**measure(exp, "none"), "wandb_dropped": wandb_dropped(d.log), "driver_exit": rc, "seconds": seconds}


def run_node_fault(cluster, root, model, args, workers: int, trials: int, back: float | None) -> dict:
    ensure_workers(cluster)
    name = f"node-{'ddp' if workers > 1 else 'inline'}"
    spec = write_spec(root, name, model, workers, trials, args.ticket_steps)
    exp = root / "runs" / name
    d = Driver(cluster, root / f"{name}.log", "search", str(spec))
    (node,) = cluster.workers()

    def victims() -> set[str] | None:
        pids = node.pids()
        now = running(exp)
        # inline: the trial process on the lost node; ddp: every running trial has a worker there
        hit = {tid for tid, h in now.items() if workers > 1 or h[-1].get("pid") in pids}
        return hit if any(past_search(now[t]) for t in hit) else None

    hit = wait_for(victims, d, args.timeout)
    entry: dict = {"executor": "train" if workers > 1 else "inline", "workers_per_trial": workers}
    if hit:
        entry["fault_at_s"] = round(time.time() - d.started, 1)
        entry["killed_processes"] = cluster.lose(node)
        entry["node_back_after_s"] = back
        if back is not None:
            time.sleep(back)
            cluster.add_worker()
    rc = d.wait(args.timeout)
    res = measure(exp, "node", hit or set())
    entry["wandb_dropped"] = wandb_dropped(d.log)
    return {**res, **entry, "fault_landed": bool(hit), "driver_exit": rc, "seconds": round(time.time() - d.started, 1)}


def run_driver_fault(cluster, root, model, args, trials: int) -> dict:
    ensure_workers(cluster)
    spec = write_spec(root, "driver", model, 1, trials, args.ticket_steps)
    exp = root / "runs" / "driver"
    d = Driver(cluster, root / "driver.log", "search", str(spec))

    seen: set[str] = set()

    def victims() -> set[str] | None:
        """Right after a trial's final report (before Tune's state, saved every 5 s, may say so), while another
        trial is past its search: the worst moment for finished trials and for completed searches."""
        now, done = running(exp), finished(exp)
        fresh = done - seen
        seen.update(done)
        return set(now) if fresh and any(past_search(h) for h in now.values()) else None

    hit = wait_for(victims, d, args.timeout)
    entry: dict = {"executor": "inline", "workers_per_trial": 1}
    if hit:
        d.kill()
        entry["fault_at_s"] = round(time.time() - d.started, 1)
        last = max((exp / f"trial_{t}" / "result.json").stat().st_mtime for t in seen)
        entry["killed_s_after_a_final_report"] = round(time.time() - last, 2)
        entry["finished_before_fault"] = len(seen)
        time.sleep(2)
    rc = d.wait(args.timeout)
    resumed = Driver(cluster, root / "driver.log", "resume", str(exp))
    entry["resume_exit"] = resumed.wait(args.timeout)
    entry["resume_seconds"] = round(time.time() - resumed.started, 1)
    res = measure(exp, "driver", hit or set())
    entry["wandb_dropped"] = wandb_dropped(d.log)  # the search's log and the resume's: one file
    return {**res, **entry, "fault_landed": bool(hit), "driver_exit": rc, "log": resumed.tail()}


def same_as(entry: dict, reference: dict | None, exp: Path, ref_exp: Path) -> dict | None:
    """Trials of the same config (same seed: the same samples) against the reference run: equal val_metric?"""
    if reference is None:
        return None
    from tickettune.searcher.export import load_trials

    def by_config(path: Path) -> dict[str, float]:
        return {
            json.dumps({k: t.config.get(k) for k in SPACE}, sort_keys=True): t.metric("val_metric")
            for t in load_trials(path)
            if t.finished
        }

    mine, ref = by_config(exp), by_config(ref_exp)
    common = sorted(set(mine) & set(ref))
    best, ref_best = entry.get("best") or {}, reference.get("best") or {}
    return {
        "trials_compared": len(common),
        "same_val_metric": sum(mine[c] == ref[c] for c in common),
        "same_best_config": {k: (best.get("config") or {}).get(k) for k in SPACE}
        == {k: (ref_best.get("config") or {}).get(k) for k in SPACE},
    }


# ----------------------------------------------------------------------------------------------- the run


def run(args: argparse.Namespace) -> dict:
    from tickettune.trainables.testing.random_models import write_random_model

    root = Path(tempfile.mkdtemp(prefix="ttc-", dir="/tmp"))  # short: Ray's socket paths live under it
    cluster = LocalCluster(root)
    trials = 2 if args.smoke else args.trials
    out: dict = {
        "what": "tickettune search on a two-node Ray cluster on one machine (1 CPU per node) under faults",
        "setup": {
            "model": "random BERT (hidden 32, 2 layers), save_pretrained + load_model",
            "flow": {**FLOW, "ticket_steps": args.ticket_steps},
            "space": SPACE,
            "trials_one_worker": trials,
            "trials_two_workers": max(1, trials // 2),
            "max_failures": 2,
            "wandb": "offline",
            "smoke": args.smoke,
        },
        "faults": [],
    }
    wanted = (SMOKE if args.smoke else args.faults).split(",")
    unknown = set(wanted) - set(FAULTS)
    if unknown:
        raise SystemExit(f"--faults: unknown {sorted(unknown)}; expected some of {','.join(FAULTS)}")
    runs = root / "runs"
    t0 = time.time()
    try:
        model = write_random_model("bert", root / "model", "tiny")
        cluster.start_head()
        reference = None
        if "reference" in wanted:
            reference = run_reference(cluster, root, model, args, trials)
            out["reference"] = reference
        if "node-inline" in wanted:
            node = run_node_fault(cluster, root, model, args, 1, trials, None)
            node["same_as_reference"] = same_as(node, reference, runs / "node-inline", runs / "reference")
            out["faults"].append(node)
        if "node-ddp" in wanted:
            out["faults"].append(run_node_fault(cluster, root, model, args, 2, max(1, trials // 2), args.back))
        if "driver" in wanted:
            drv = run_driver_fault(cluster, root, model, args, trials + 1 if args.smoke else trials)
            drv["same_as_reference"] = same_as(drv, reference, runs / "driver", runs / "reference")
            out["faults"].append(drv)
    finally:
        for d in Driver.started_here:
            if d.proc.poll() is None:
                d.kill()
        cluster.stop()
        out["seconds"] = round(time.time() - t0, 1)
        if args.keep:
            shutil.copytree(root, args.keep / root.name, ignore=lambda d, names: _node_dirs(root, d, names))
        shutil.rmtree(root, ignore_errors=True)
    return out


def _node_dirs(root: Path, folder: str, names: list[str]) -> list[str]:
    """What --keep leaves out: the nodes' Ray temp dirs and the isolated home."""
    return [n for n in names if Path(folder) == root and (n == "home" or re.fullmatch(r"node-(head|w\d+)", n))]


COLUMNS = ("fault", "executor", "planned", "finished", "interrupted", "restored", "search_phases_rerun")
MORE = ("finished_rerun", "finished_replayed", "max_wandb_runs_per_trial", "wandb_dropped", "exported")


def print_table(res: dict) -> None:
    rows = ([res["reference"]] if "reference" in res else []) + res["faults"]
    print(" ".join(f"{c:>19}" for c in COLUMNS + MORE))
    for r in rows:
        print(" ".join(f"{str(r.get(c, '-')):>19}" for c in COLUMNS + MORE))
    for r in rows:
        if r.get("same_as_reference"):
            print(f"{r['fault']}/{r.get('executor')}: against the reference {r['same_as_reference']}")
    print(f"total {res['seconds']:.0f} s")


def main(argv=None) -> dict:
    args = parse_args(argv)
    return finish(run(args), args.json, print_table)


if __name__ == "__main__":
    main()
