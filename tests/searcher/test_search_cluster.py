"""A search against a real cluster: `ray start --head` (+ a second node joined with `ray start --address`)
on this machine, the search connecting with `address=`. Both of Ray's auth modes, and in both a token file in
the home folder (any earlier `ray start` leaves one): the driver must take the cluster's mode, not the file's.
HOME points into tmp_path, so the user's own ~/.ray is never read or written. `ray stop --force` afterwards,
always (it ends every Ray process of this user on the machine: do not run the tests beside a cluster you need)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import flow_stub
import pytest

from tickettune.searcher.export import load_trials

pytestmark = [pytest.mark.ray, pytest.mark.slow]  # ~40 s each here: two `ray start`, 2 trials, `ray stop`
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_cli(*args: str, timeout: int = 120, **env_vars: str) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}, **env_vars}
    return subprocess.run([RAY, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def home_with_token(tmp_path, monkeypatch) -> Path:
    """A home folder holding ~/.ray/auth_token, as any earlier `ray start` leaves it."""
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("tickettune-test-token-0123456789abcdef")
    monkeypatch.setenv("HOME", str(home))
    for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.setenv(k, "")  # recorded, so that what the search sets is undone after the test
        monkeypatch.delenv(k)
    return home


@pytest.fixture(params=["token", "disabled"])
def cluster(request, home_with_token):
    flow_stub.by_value()
    assert flow_stub.ray_is_down()
    mode = request.param
    port = free_port()
    head = ray_cli(
        "start",
        "--head",
        f"--port={port}",
        "--num-cpus=1",
        f"--dashboard-port={free_port()}",
        "--disable-usage-stats",
        RAY_AUTH_MODE=mode,
    )
    try:
        assert head.returncode == 0, head.stdout + head.stderr
        worker = ray_cli(
            "start", f"--address=127.0.0.1:{port}", "--num-cpus=1", "--disable-usage-stats", RAY_AUTH_MODE=mode
        )
        assert worker.returncode == 0, worker.stdout + worker.stderr
        yield mode, f"127.0.0.1:{port}"
    finally:
        ray_cli("stop", "--force")


CHILD = """
import json, os, sys
sys.path.insert(0, {tests!r})
import flow_stub
from tickettune.searcher import cluster_auth
from tickettune.searcher.search import run_search
flow_stub.by_value()
wants = cluster_auth.cluster_wants_token({address!r})
spec = flow_stub.spec_dict({root!r}, "cluster", num_samples=2)
res = run_search(spec, address={address!r}, flow_fn=flow_stub.stub_flow, space=flow_stub.space, verbose=0)
print("RESULT " + json.dumps({{"wants_token": wants, "mode": os.environ.get("RAY_AUTH_MODE"),
    "statuses": res.statuses, "cpus": res.plan["cluster_cpus"], "exported": res.exported,
    "first_failure": res.outcome.first_failure}}))
"""


def test_search_on_a_two_node_cluster_takes_the_clusters_auth(tmp_path, cluster):
    """In a fresh process, as a user's `tickettune search --address` would be (Ray keeps its auth settings
    per process: one driver joins one cluster)."""
    mode, address = cluster
    tests = str(Path(flow_stub.__file__).parent)
    code = CHILD.format(tests=tests, address=address, root=str(tmp_path / "runs"))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=400)
    lines = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    assert r.returncode == 0 and lines, r.stdout[-2000:] + r.stderr[-4000:]
    out = json.loads(lines[-1][len("RESULT ") :])
    assert out["wants_token"] == (mode == "token") and out["mode"] == mode
    assert out["cpus"] == 2.0  # both nodes' CPUs
    assert out["statuses"] == {"TERMINATED": 2}, out
    assert all(t.ticket_dir is not None for t in load_trials(tmp_path / "runs" / "cluster"))
    assert out["exported"] is not None
