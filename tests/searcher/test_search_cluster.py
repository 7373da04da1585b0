"""A search against a real cluster: `ray start --head` (+ a second node joined with `ray start --address`)
on this machine, the search connecting with `address=`. Ray 2.60's `ray start` turns token auth on:
`connect` sets RAY_AUTH_MODE=token when a token is there. `ray stop --force` afterwards, always (it ends
every Ray process of this user on the machine: do not run the tests beside a Ray cluster you need)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import flow_stub
import pytest

from tickettune.searcher.export import load_trials
from tickettune.searcher.search import run_search

pytestmark = [pytest.mark.ray, pytest.mark.slow]  # ~40 s here: two `ray start`, 2 trials, `ray stop`
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_cli(*args: str, timeout: int = 120, **env_vars: str) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, **env_vars}
    return subprocess.run([RAY, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def cluster(tmp_path):
    flow_stub.by_value()
    assert flow_stub.ray_is_down()
    port = free_port()
    head = ray_cli(
        "start", "--head", f"--port={port}", "--num-cpus=1", f"--dashboard-port={free_port()}", "--disable-usage-stats"
    )
    try:
        assert head.returncode == 0, head.stdout + head.stderr
        # joining a token-auth cluster needs RAY_AUTH_MODE=token (the token: ~/.ray/auth_token)
        worker = ray_cli(
            "start", f"--address=127.0.0.1:{port}", "--num-cpus=1", "--disable-usage-stats", RAY_AUTH_MODE="token"
        )
        assert worker.returncode == 0, worker.stdout + worker.stderr
        yield f"127.0.0.1:{port}"
    finally:
        ray_cli("stop", "--force")


def test_search_on_a_two_node_cluster(tmp_path, cluster, monkeypatch):
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    spec = flow_stub.spec_dict(tmp_path / "runs", "cluster", num_samples=2)
    res = run_search(spec, address=cluster, flow_fn=flow_stub.stub_flow, space=flow_stub.space, verbose=0)
    assert flow_stub.ray_is_down()
    assert res.plan["cluster_cpus"] == 2.0  # both nodes' CPUs
    assert res.finished and res.statuses == {"TERMINATED": 2}
    assert all(t.ticket_dir is not None for t in load_trials(tmp_path / "runs" / "cluster"))
    assert res.exported is not None
