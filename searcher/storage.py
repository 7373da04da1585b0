"""Storage every node sees: on a cluster of more than one node, checked from each node before any trial starts.

Trials write their tickets, checkpoints and ``FAILED.json`` into their folders under `storage`, and the driver
reads them from there (export, report, resume). A path that is local to each machine (the same path on every
node, but not shared) loses silently what the other nodes write: the driver exports nothing, or a retried trial
on another node finds no checkpoint. So before the first trial the driver writes a marker with a fresh token
into the experiment folder; one task pinned to each alive node (no CPU asked) reads it back and writes its own
answer beside it; the driver then reads every answer. Both directions are checked: the node sees what the
driver wrote, and the driver sees what the node wrote. A node that fails either is named in the refusal with
the reason (no such file, another token, a read-only mount, no answer in time).

A URI (``s3://``, ``gs://``) is refused earlier (search.py `experiment_dir_of`): tickets, ``FAILED.json`` and
Tune's ``result.json`` are written and read as files by path (trial.py, export.py, report.py), while Ray's
storage layer moves only checkpoints (and, with ``SyncConfig(sync_artifacts=True)``, a trial's working
folder); the export would have to fetch tickets through it. Mount the bucket (NFS, a FUSE mount) instead.

Nodes that join after the check (an autoscaler adding workers) are not checked.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

CHECK_DIR = ".storage-check"
TIMEOUT_S = 120.0  # a node's task may first have to start a Python worker


class StorageNotShared(ValueError):
    """Some node of the cluster cannot see the search's storage (the message names it and says why)."""


@dataclass(frozen=True)
class Node:
    node_id: str
    address: str  # its IP
    hostname: str = ""

    def describe(self) -> str:
        host = f" {self.hostname}" if self.hostname and self.hostname != self.address else ""
        return f"node {self.node_id[:12]} ({self.address}{host})"


def probe(marker: str, token: str, answer: str) -> str | None:
    """On a node: None when `marker` holds `token` and `answer` could be written there; else why not."""
    try:
        seen = Path(marker).read_text().strip()
    except FileNotFoundError:
        return f"{marker} does not exist there"
    except OSError as e:
        return f"cannot read {marker}: {e.strerror or e}"
    if seen != token:
        return f"{marker} holds another search's token there (a different file system at the same path)"
    try:
        Path(answer).write_text(token)
    except OSError as e:
        return f"cannot write into {Path(answer).parent}: {e.strerror or e}"
    return None


Prober = Callable[[list[Node], str, str, Callable[[Node], str]], dict[str, str | None]]


def alive_nodes() -> list[Node]:
    import ray

    return [
        Node(n["NodeID"], n.get("NodeManagerAddress", "?"), n.get("NodeManagerHostname", ""))
        for n in ray.nodes()
        if n.get("Alive")
    ]


def probe_with_ray(nodes: list[Node], marker: str, token: str, answer_of: Callable[[Node], str]) -> dict:
    """`probe` as one task on each node (pinned, no CPU); node id -> its answer, or why it gave none."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0, max_retries=0)(probe)
    refs = {
        task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False)).remote(
            marker, token, answer_of(n)
        ): n
        for n in nodes
    }
    ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=TIMEOUT_S)
    out: dict[str, str | None] = {}
    for ref in ready:
        try:
            out[refs[ref].node_id] = ray.get(ref)
        except Exception as e:  # noqa: BLE001 - the node's own failure is the reason
            out[refs[ref].node_id] = f"its check failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    for ref in late:
        ray.cancel(ref, force=True)
        out[refs[ref].node_id] = f"no answer within {TIMEOUT_S:.0f} s"
    return out


def check_shared(
    experiment_dir: str | os.PathLike,
    nodes: list[Node] | None = None,
    prober: Prober = probe_with_ray,
    verbose: int = 1,
) -> list[Node]:
    """Refuse (`StorageNotShared`) unless every node sees `experiment_dir` both ways; returns the nodes checked
    (none on a one-node Ray). `nodes`: default the cluster's alive nodes (Ray must be up)."""
    nodes = alive_nodes() if nodes is None else nodes
    if len(nodes) <= 1:
        return []
    exp = Path(experiment_dir).absolute()
    folder = exp / CHECK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    marker = folder / token

    def answer_of(node: Node) -> str:
        return str(folder / f"{token}.{node.node_id}")

    try:
        marker.write_text(token)
        answers = prober(nodes, str(marker), token, answer_of)
        problems = []
        for n in nodes:
            why = answers.get(n.node_id, "no answer")
            if why is None and not _holds(Path(answer_of(n)), token):
                why = f"what it wrote ({answer_of(n)}) does not reach the driver"
            if why is not None:
                problems.append(f"{n.describe()}: {why}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if problems:
        raise StorageNotShared(
            f"storage {exp.parent}: not shared by every node of the cluster ({len(problems)} of {len(nodes)} "
            f"cannot use it): " + "; ".join(problems) + ". Trials on such a node would write tickets and "
            "checkpoints the driver never sees: put storage on a file system every node mounts at the same path"
        )
    if verbose:
        print(f"[tickettune] storage {exp.parent}: seen by all {len(nodes)} nodes", flush=True)
    return nodes


def _holds(path: Path, token: str) -> bool:
    try:
        return path.read_text().strip() == token
    except OSError:
        return False
