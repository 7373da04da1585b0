"""Storage that only some nodes see, on a real two-node cluster: the worker node runs in a mount namespace of its
own where the storage folder is an empty tmpfs (a machine whose local disk has the same path), as `ray start`
processes inherit it. The search is refused before any trial starts, with a message naming that node; a folder
both nodes see passes. The head and the driver share this machine's file system.

Needs root (or unprivileged user namespaces) for `unshare -m`; skipped where it is refused."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))  # benchkit: the local cluster
from benchkit.local_cluster import LocalCluster

pytestmark = [pytest.mark.ray, pytest.mark.slow]  # ~40 s here: two `ray start`, the check, the cluster's end
TESTS = Path(__file__).resolve().parents[1]


def can_unshare() -> bool:
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    return r.returncode == 0


@pytest.fixture
def split_cluster():
    if not can_unshare():
        pytest.skip("unshare -m is refused here (needs root or user namespaces)")
    import flow_stub

    assert flow_stub.ray_is_down()
    root = Path(tempfile.mkdtemp(prefix="tts-", dir="/tmp"))  # short: Ray's socket paths live under it
    hidden, shared = root / "local-disk", root / "shared"
    hidden.mkdir()
    shared.mkdir()
    cluster = LocalCluster(root)
    try:
        cluster.start_head()
        mount = 'mount -t tmpfs tickettune-test "$0" && exec "$@"'  # the node's own, empty folder at that path
        cluster.add_worker(wrap=("unshare", "-m", "--propagation", "private", "sh", "-c", mount, str(hidden)))
        yield cluster, hidden, shared
    finally:
        cluster.stop()
        import shutil

        shutil.rmtree(root, ignore_errors=True)


CHILD = """
import json, sys
sys.path.insert(0, {tests!r})
import flow_stub, ray
from tickettune.searcher.search import run_search
from tickettune.searcher.storage import StorageNotShared, check_shared
flow_stub.by_value()
out = {{}}
try:
    run_search(flow_stub.spec_dict({hidden!r}, "split"), address={address!r}, flow_fn=flow_stub.stub_flow,
               space=flow_stub.space, verbose=0)
except StorageNotShared as e:
    out["refused"] = str(e)
ray.init(address={address!r})
nodes = ray.nodes()
out["head"] = [n["NodeID"] for n in nodes if "node:__internal_head__" in n["Resources"]]
out["worker"] = [n["NodeID"] for n in nodes if "node:__internal_head__" not in n["Resources"]]
out["shared_ok"] = len(check_shared({shared!r} + "/exp", verbose=0))
print("RESULT " + json.dumps(out))
"""


def test_a_node_that_cannot_see_storage_is_named_before_any_trial(split_cluster):
    cluster, hidden, shared = split_cluster
    code = CHILD.format(tests=str(TESTS), hidden=str(hidden), shared=str(shared), address=cluster.address)
    r = subprocess.run([sys.executable, "-c", code], env=cluster.env(), capture_output=True, text=True, timeout=300)
    lines = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    assert r.returncode == 0 and lines, r.stdout[-2000:] + r.stderr[-4000:]
    out = json.loads(lines[-1][len("RESULT ") :])
    (worker,), (head,) = out["worker"], out["head"]
    msg = out.get("refused", "")
    assert f"node {worker[:12]}" in msg and "does not exist there" in msg and "1 of 2" in msg, out
    assert head[:12] not in msg
    exp = hidden / "split"
    assert not list(exp.glob("trial_*")) and not (exp / ".storage-check").exists()  # nothing ran, nothing left
    assert out["shared_ok"] == 2  # a folder both nodes see passes
