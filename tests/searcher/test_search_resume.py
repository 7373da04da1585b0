"""A search killed hard (SIGKILL of the process that runs it) after 2 of 4 trials, then resumed: the
finished trials are not run again, the Optuna study carries on, and the search reaches num_samples."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import flow_stub
import pytest

from tickettune.searcher.export import load_trials
from tickettune.searcher.resume import resume_search

pytestmark = pytest.mark.ray
TESTS = Path(flow_stub.__file__).parent  # tests/: where the victim process finds flow_stub

VICTIM = """
import sys
sys.path.insert(0, {tests!r})
import flow_stub
flow_stub.by_value()
from tickettune.searcher.search import run_search
spec = flow_stub.spec_dict({root!r}, "resume", num_samples=4, max_concurrent=1)
run_search(spec, num_cpus=2, flow_fn=flow_stub.stub_flow, space=flow_stub.space, verbose=0,
           callbacks=[flow_stub.KillAfter(2, {session_file!r})])
print("NOT KILLED")
"""


def test_killed_search_resumes_without_rerunning_finished_trials(tmp_path):
    flow_stub.by_value()
    assert flow_stub.ray_is_down()
    session_file = tmp_path / "session.json"
    # state saved every 0.5 s; a trial takes >= 2 s: the kill (1.5 s after the 2nd completion) lands
    # inside the 3rd trial, after a save that records the 2 completions
    env = {**os.environ, "TICKETTUNE_TEST_KILL": "1", "TUNE_GLOBAL_CHECKPOINT_S": "0.5", "TICKETTUNE_STUB_SLEEP": "1.0"}
    code = VICTIM.format(tests=str(TESTS), root=str(tmp_path), session_file=str(session_file))
    try:
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=400)
    finally:
        if session_file.exists():
            flow_stub.kill_session_leftovers(json.loads(session_file.read_text())["session"])
    assert r.returncode == -9, (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
    killed = json.loads(session_file.read_text())
    exp = tmp_path / "resume"
    before = {t.trial_id: t for t in load_trials(exp)}
    done_before = {tid for tid, t in before.items() if t.status == "TERMINATED"}
    assert set(killed["completed"]) == done_before and len(done_before) == 2
    snapshots = {tid: (exp / f"trial_{tid}" / "result.json").read_bytes() for tid in done_before}
    pids = {tid: before[tid].last["worker_pid"] for tid in done_before}

    res = resume_search(exp, num_cpus=2, flow_fn=flow_stub.stub_flow, verbose=0)
    assert flow_stub.ray_is_down()
    after = {t.trial_id: t for t in load_trials(exp)}
    assert res.finished and len(after) == 4 and all(t.status == "TERMINATED" for t in after.values())
    for tid in done_before:  # not executed again: same reports, byte for byte, from the same process
        assert (exp / f"trial_{tid}" / "result.json").read_bytes() == snapshots[tid]
        assert after[tid].last["worker_pid"] == pids[tid]
    assert res.exported is not None

    # the Optuna study went on: 4 trials told, the first two with the configs Tune ran
    [state_file] = sorted(exp.glob("searcher-state-*.pkl"))[-1:]
    with open(state_file, "rb") as f:
        state = pickle.load(f)
    study = state["_ot_study"] if isinstance(state, dict) else state._ot_study
    assert len(study.trials) == 4
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    told = sorted(round(t.params["head_ratio"], 6) for t in study.trials)
    assert told == sorted(round(t.config["head_ratio"], 6) for t in after.values())
