"""scripts/bench/cluster_load.py at its smallest: two searches (1 and 3 trials, 2 at a time) on a two-node cluster
of `ray start` nodes on this machine; the JSON has both, every trial finished, and per-extra-trial figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]  # ~1.5 min here
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench" / "cluster_load.py"


def test_two_searches_and_the_cost_of_the_extra_trials(tmp_path, shared_data):
    out = tmp_path / "load.json"
    argv = ["--small", "1", "--trials", "3", "--concurrent", "2", "--cpus", "1", "--json", str(out)]
    r = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and out.is_file(), r.stdout[-3000:] + r.stderr[-5000:]
    res = json.loads(out.read_text())
    assert res["small"]["statuses"] == {"TERMINATED": 1} and res["large"]["statuses"] == {"TERMINATED": 3}
    assert res["small"]["exit"] == res["large"]["exit"] == 0
    per = res["per_extra_trial"]
    assert per["trial_s"] > 0 and per["wall_s"] > 0 and isinstance(per["driver_cpu_s"], float)
    assert res["machine"]["cpu"]["model_name"]
