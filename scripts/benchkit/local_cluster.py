"""A Ray cluster of several nodes on this one machine, started as a user would (`ray start --head`, then
`ray start --address` per worker node), whose worker nodes can be lost like machines.

Each node gets a temp dir of its own (``ray start --temp-dir``, allowed per node), so every process of a node
names that folder on its command line or descends from one that does: that is how `node_pids` finds them
(raylet, its workers and agents, the log monitor) without touching any other Ray on the machine. Losing a node
is SIGKILL to all of them at once: no `ray stop`, which would end every node of this user. `stop` ends the
cluster's own processes the same way (head included).

HOME points into the cluster's folder (Ray writes ~/.ray there), RAY_ADDRESS and RAY_AUTH_MODE are not
inherited, and the cluster runs without token auth unless asked (`auth="token"`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def write_search_config(root: Path, name: str, model: Path, trials: int, flow: dict, space: dict, **search) -> Path:
    """`<root>/<name>.yaml` for `tickettune search` on such a cluster: experiments under `<root>/runs`, the shared
    data, no scheduler; `search` adds to (or overrides) the search section."""
    from tickettune.trainables.tasks.data import data_root

    config = {
        "name": name,
        "storage": str(root / "runs"),
        "search": {"num_samples": trials, "seed": 0, "scheduler": "none", **search},
        "fixed": {**flow, "model": str(model), "data_root": str(data_root())},
        "space": space,
    }
    path = root / f"{name}.yaml"
    path.write_text(json.dumps(config, indent=1))  # JSON is YAML
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _parents() -> dict[int, int]:
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                out[int(d.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return out


def pids_naming(text: str) -> set[int]:
    """Every process whose command line names the path `text`, and all their descendants."""
    parents = _parents()
    pattern = re.compile(re.escape(text) + r"(?=[/\s]|$)")  # the folder itself: node-w1 is not node-w10
    roots = {pid for pid in parents if pid != os.getpid() and pattern.search(_cmdline(pid))}
    found, frontier = set(roots), set(roots)
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier and pid not in found}
        found |= frontier
    return found


def kill_all(pids: set[int], sig: int = signal.SIGKILL) -> int:
    n = 0
    for pid in pids:
        try:
            os.kill(pid, sig)
            n += 1
        except ProcessLookupError:
            pass
    return n


@dataclass
class Node:
    name: str
    temp_dir: Path
    head: bool = False
    started: float = field(default_factory=time.time)

    def pids(self) -> set[int]:
        return pids_naming(str(self.temp_dir))


class LocalCluster:
    def __init__(self, root: str | os.PathLike, cpus_per_node: float = 1, auth: str = "disabled"):
        self.root = Path(root)
        self.cpus = cpus_per_node
        self.auth = auth
        self.port = free_port()
        self.nodes: list[Node] = []
        self.home = self.root / "home"
        self.home.mkdir(parents=True, exist_ok=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of the cluster's processes, and of drivers joining it as a user's shell would."""
        drop = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
        env = {k: v for k, v in os.environ.items() if k not in drop}
        return {**env, "HOME": str(self.home), **extra}

    def _ray_start(self, node: Node, *args: str, wrap: tuple[str, ...] = ()) -> Node:
        node.temp_dir.mkdir(parents=True, exist_ok=True)
        cmd = [RAY, "start", *args, f"--num-cpus={self.cpus}", f"--temp-dir={node.temp_dir}", "--disable-usage-stats"]
        cmd = [*wrap, *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=self.env(RAY_AUTH_MODE=self.auth))
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        self.nodes.append(node)
        return node

    def start_head(self) -> Node:
        node = Node("head", self.root / "node-head", head=True)
        return self._ray_start(node, "--head", f"--port={self.port}", f"--dashboard-port={free_port()}")

    def add_worker(self, wrap: tuple[str, ...] = ()) -> Node:
        """A new worker node; `wrap`: a command prefix for its `ray start` (say, a mount namespace of its own)."""
        n = len(list(self.root.glob("node-w*"))) + 1  # a fresh folder for every node, lost ones included
        return self._ray_start(Node(f"w{n}", self.root / f"node-w{n}"), f"--address={self.address}", wrap=wrap)

    def workers(self) -> list[Node]:
        return [n for n in self.nodes if not n.head]

    def lose(self, node: Node) -> int:
        """The node's machine goes away: SIGKILL to its raylet, workers and agents at once; returns how many."""
        if node.head:
            raise ValueError("losing the head ends the cluster: lose a worker node")
        killed = kill_all(node.pids())
        self.nodes.remove(node)
        return killed

    def stop(self) -> None:
        """End every process of this cluster (all nodes), nothing else; then remove its temp dirs."""
        dirs = [str(p) for p in self.root.glob("node-*") if p.is_dir()]
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
            pids = set().union(*(pids_naming(d) for d in dirs)) if dirs else set()
            if not pids:
                break
            kill_all(pids, sig)
            deadline = time.time() + wait
            while time.time() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
                time.sleep(0.2)
        self.nodes = []
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
