"""Where the machine's CPU went while two runs trained side by side: every process's CPU time read from /proc about
once a second, then, over a time span, cores used per group: the training processes, the rest of this benchmark's
process tree (its driver; under Ray the raylet, GCS, dashboard, idle workers) and everything else on the machine
(other people's work: a figure taken beside it is noisy)."""

from __future__ import annotations

import os
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> tuple[int, float, str] | None:
    """(parent pid, CPU seconds, a short name: the process title's first word) of one process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    name = cmd.split(" ")[0] if cmd else raw[raw.index("(") + 1 : raw.rindex(")")]
    if name.endswith("python") or "python3" in name:  # the script or module it runs says more
        rest = [w for w in cmd.split(" ")[1:] if not w.startswith("-")]
        name = f"python {os.path.basename(rest[0])}" if rest else "python"
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK, name[:60]


def snapshot() -> dict[int, tuple[int, float, str]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            s = _stat(entry)
            if s is not None:
                out[int(entry)] = s
    return out


class CpuSampler:
    """Snapshots of every process in a background thread, every `period` seconds, while in the `with` block."""

    def __init__(self, period: float = 1.0):
        self.period = period
        self.samples: list[tuple[float, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), snapshot()))
            self._stop.wait(self.period)

    def __enter__(self) -> "CpuSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.time(), snapshot()))

    def share(self, lo: float, hi: float, trainers: set[int], root: int | None = None) -> dict:
        """Cores used between the samples nearest inside [lo, hi]: per group and, within the groups, per name.
        `trainers`: the pids that trained; `root`: this benchmark's own process (default: this one)."""
        return share(self.samples, lo, hi, trainers, os.getpid() if root is None else root)


def _descendants(procs: dict[int, tuple[int, float, str]], root: int) -> set[int]:
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = set(), [root]
    while todo:
        p = todo.pop()
        if p not in out:
            out.add(p)
            todo += kids.get(p, [])
    return out


def share(samples: list[tuple[float, dict]], lo: float, hi: float, trainers: set[int], root: int) -> dict:
    inside = [s for s in samples if lo <= s[0] <= hi]
    if len(inside) < 2:
        return {"seconds": 0.0, "cores": {}, "by_name": {}}
    (t0, a), (t1, b) = inside[0], inside[-1]
    ours = _descendants(b, root) | _descendants(a, root)
    cores: dict[str, float] = {"training": 0.0, "benchmark_other": 0.0, "foreign": 0.0}
    names: dict[str, float] = {}
    for pid, (_, cpu, name) in b.items():
        used = (cpu - (a[pid][1] if pid in a else 0.0)) / (t1 - t0)
        if used <= 0:
            continue
        group = "training" if pid in trainers else "benchmark_other" if pid in ours else "foreign"
        cores[group] += used
        key = f"{group}: {name}"
        names[key] = names.get(key, 0.0) + used
    top = dict(sorted(((k, round(v, 3)) for k, v in names.items() if v >= 0.005), key=lambda kv: -kv[1]))
    return {"seconds": t1 - t0, "cores": {k: round(v, 3) for k, v in cores.items()}, "by_name": top}
