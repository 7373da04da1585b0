"""What the tax measurement (scripts/bench/concurrent_step.py) records inside every training process, HF's or
tickettune's, plain or inside a Ray trial: the clock at every report (wall, process CPU, the training thread's CPU)
and the facts that decide how the process computes (torch threads, OMP/MKL variables, CPU affinity, which thread
trains, the CPU each OS thread of the process burned). The same records on both sides, so that one window
statistic (`window_stats`) compares them.

Ray pickles `probe_flow` by value (`register_pickle_by_value` on this module), so Ray's workers need nothing of
scripts/ on their path.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from pathlib import Path

PROBE_FILE = "step_probe.json"
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "KMP_BLOCKTIME", "OMP_WAIT_POLICY")


def thread_cpu() -> dict[str, float]:
    """CPU seconds per OS thread of this process ("<tid> <name>" -> utime + stime), from /proc."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        out[f"{tid} {name}"] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14, 15)
    return out


def facts() -> dict:
    """How this process computes, read from the thread that trains."""
    import torch

    return {
        "pid": os.getpid(),
        "main_thread": threading.current_thread() is threading.main_thread(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "env": {k: os.environ.get(k) for k in THREAD_ENV},
        "affinity": sorted(os.sched_getaffinity(0)),
        "nice": os.nice(0),
        "os_threads": len(os.listdir("/proc/self/task")),
    }


class StepLog:
    """Clock readings at chosen steps of one training run, and the process's facts at the first of them."""

    def __init__(self):
        self.records: list[dict] = []
        self.facts: dict | None = None
        self._threads_first: dict[str, float] = {}

    def mark(self, step: int) -> None:
        if self.facts is None:
            self.facts = facts()
            self._threads_first = thread_cpu()
        self.records.append(
            {
                "step": int(step),
                "time": time.time(),  # comparable between processes: the overlap of two runs
                "wall": time.perf_counter(),
                "cpu": time.process_time(),  # every thread of the process
                "thread_cpu": time.thread_time(),  # the training thread alone
            }
        )

    def to_dict(self) -> dict:
        last = thread_cpu()
        burned = {k: round(v - self._threads_first.get(k, 0.0), 3) for k, v in last.items()}
        return {
            "facts": self.facts,
            "records": self.records,
            # CPU each OS thread burned between the first mark and now (the busiest first)
            "thread_cpu_s": dict(sorted(burned.items(), key=lambda kv: -kv[1])),
        }

    def write(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))


class Recording:
    """A tickettune `Reporter` that marks the clock at every report of the dense phase, then reports on."""

    def __init__(self, reporter, log: StepLog):
        self._inner, self.log = reporter, log

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def report(self, metrics: dict, checkpoint_dir: str | None = None) -> None:
        if metrics.get("phase") == "baseline":
            self.log.mark(metrics["step"])  # before the report: a window holds its steps and one report
        self._inner.report(metrics, checkpoint_dir=checkpoint_dir)


def probe_flow(cfg, reporter, ticket_dir: str | None = None):
    """A search's `flow_fn`: `run_flow` with its reports recorded into <trial folder>/step_probe.json."""
    from tickettune.trainables.flow import run_flow

    log = StepLog()
    try:
        return run_flow(cfg, Recording(reporter, log), ticket_dir=ticket_dir)
    finally:
        if ticket_dir is not None:
            log.write(Path(ticket_dir).parent / PROBE_FILE)


def hf_step_callback(log: StepLog, every: int):
    """A `TrainerCallback` that marks the clock every `every` optimizer steps (the flow's report_interval)."""
    from transformers import TrainerCallback

    class Marks(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step % every == 0:
                log.mark(state.global_step)

    return Marks()


def overlap(runs: list[list[dict]]) -> tuple[float, float]:
    """The time span in which every run was between its first and its last mark."""
    return max(r[0]["time"] for r in runs), min(r[-1]["time"] for r in runs)


def windows(runs: list[list[dict]], skip: int = 1) -> list[dict]:
    """Per window between two consecutive marks of a run (its first `skip` windows dropped: warm-up), ms per
    step of wall-clock, process CPU and the training thread's CPU; only windows inside the overlap of all runs,
    so that every window counted had the other run(s) beside it."""
    if any(len(r) < 2 for r in runs):
        return []
    lo, hi = overlap(runs)
    out = []
    for k, recs in enumerate(runs):
        for i, (a, b) in enumerate(zip(recs, recs[1:])):
            if i < skip or a["time"] < lo or b["time"] > hi:
                continue
            n = b["step"] - a["step"]
            out.append(
                {
                    "run": k,
                    "start": a["step"],
                    "steps": n,
                    "wall_ms": 1e3 * (b["wall"] - a["wall"]) / n,
                    "cpu_ms": 1e3 * (b["cpu"] - a["cpu"]) / n,
                    "thread_cpu_ms": 1e3 * (b["thread_cpu"] - a["thread_cpu"]) / n,
                }
            )
    return out


def by_start(windows_: list[dict]) -> dict[int, dict]:
    """Windows grouped by the step they start at (the same batches on every side: the loader is seeded), each
    key the mean over the runs (and rounds) that have that window."""
    groups: dict[int, list[dict]] = {}
    for w in windows_:
        groups.setdefault(w["start"], []).append(w)
    return {
        s: {k: statistics.fmean(w[k] for w in ws) for k in ("wall_ms", "thread_cpu_ms")} | {"n": len(ws)}
        for s, ws in sorted(groups.items())
    }


def matched_ratio(num: dict[int, dict], den: dict[int, dict], key: str = "wall_ms") -> float | None:
    """Median over the windows both arms have (same starting step, so the same batches) of num / den: batch
    lengths vary 2x from window to window, so a ratio of medians over different windows would not be like
    for like."""
    common = sorted(set(num) & set(den))
    return statistics.median(num[s][key] / den[s][key] for s in common) if common else None


def window_stats(runs: list[list[dict]], skip: int = 1) -> dict:
    """Medians over the windows of `windows`, and how many there were; None medians when there were none."""
    ws = windows(runs, skip)
    med = {k: (statistics.median(w[k] for w in ws) if ws else None) for k in ("wall_ms", "cpu_ms", "thread_cpu_ms")}
    return {**med, "windows": len(ws), "steps": sum(w["steps"] for w in ws)}
