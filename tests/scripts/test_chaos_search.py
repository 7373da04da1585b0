"""The chaos run's smoke (scripts/bench/chaos_search.py --smoke): a real search (the real flow, a tiny random BERT
on the shared SST-2 data, W&B offline) on a two-node cluster started with `ray start` on this machine; the worker
node lost mid ticket phase (not brought back), then the driver SIGKILLed mid-search and `tickettune resume`. The
targets of issue 31: nothing finished runs again, no completed search phase runs again, every planned trial ends,
the best ticket is exported, one W&B run per trial. Several minutes: `make test-slow`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench" / "chaos_search.py"


def test_lose_a_node_then_the_driver_and_lose_nothing(tmp_path, shared_data):
    out = tmp_path / "chaos.json"
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--json", str(out), "--keep", str(tmp_path / "kept")],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert r.returncode == 0 and out.is_file(), r.stdout[-3000:] + r.stderr[-5000:]
    res = json.loads(out.read_text())
    assert res["machine"]["cpu"]["model_name"]
    node, driver = res["faults"]
    assert (node["fault"], driver["fault"]) == ("node", "driver")
    for f in (node, driver):
        assert f["fault_landed"], f  # the fault struck while a trial was past its search
        ended = f["statuses"].get("TERMINATED", 0) + f["statuses"].get("ERROR", 0)
        assert ended == f["planned"] == f["finished"], f  # every planned trial ended, and finished
        assert f["interrupted"] >= 1 and f["finished_rerun"] == 0 and f["search_phases_rerun"] == 0, f
        assert f["exported"] and f["max_wandb_runs_per_trial"] == 1, f
        assert f["wandb"]["trials_with_a_run"] == f["planned"] and f["wandb_dropped"] == 0, f
    assert node["restored"] >= 1 and node["killed_processes"] > 0, node  # the victim went on from its checkpoint
    assert node["driver_exit"] == 0 and driver["resume_exit"] == 0
