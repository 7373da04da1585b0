"""ASHA in a real search (Ray, the stub flow with interim dev metrics): the trial that is behind at a rung stops
there, the dense baseline behind it finishes, the report says why, export skips the stopped trial; and a search
killed after a stop and resumed keeps that stop and judges the trials it restarts against the same rungs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import flow_stub
import pytest

from tickettune.searcher.export import load_trials
from tickettune.searcher.report import trial_table
from tickettune.searcher.resume import resume_search
from tickettune.searcher.search import run_search
from tickettune.searcher.stops import stop_reason

pytestmark = pytest.mark.ray
TESTS = Path(flow_stub.__file__).parent


@pytest.fixture(autouse=True)
def _ray_down(monkeypatch):
    flow_stub.by_value()
    monkeypatch.setenv("TICKETTUNE_STUB_INTERIM", "1")  # the local Ray instance's workers inherit it
    assert flow_stub.ray_is_down()
    yield
    assert flow_stub.ray_is_down()


def ahead_baseline_behind(trial) -> dict:
    """Trial 0 scores 0.5 at every rung, trial 1 is the dense baseline (0.0 at every rung: behind everyone),
    trial 2 scores 0.1. A tight ε keeps each search phase past ASHA's rung 1 (eval_step 12 of max_t 50)."""
    cfg = flow_stub.space(trial)
    cfg.update(head_ratio=[0.5, 0.5, 0.1][trial.number], eps=0.05)
    if trial.number == 1:  # as `search.baseline` marks its trial (optuna_space.SpaceFn)
        del cfg["ticket_steps"]
        cfg.update(baseline=True, budget_steps=50)
    return cfg


def test_asha_stops_the_trial_behind_and_never_the_baseline(tmp_path):
    spec = flow_stub.spec_dict(tmp_path, "sched", num_samples=3, max_concurrent=1, scheduler="asha")
    res = run_search(spec, num_cpus=2, flow_fn=flow_stub.stub_flow, space=ahead_baseline_behind, verbose=0)
    assert res.finished and res.statuses == {"TERMINATED": 3}, res
    first, base, weak = load_trials(tmp_path / "sched")
    assert base.is_baseline and base.finished and base.stopped is None
    assert [r["eval_step"] for r in base.history if "eval_step" in r] == list(range(5, 50, 5))  # every rung passed
    assert first.finished and first.stopped is None and first.ticket_dir is not None
    assert not weak.finished and weak.ticket_dir is None
    assert stop_reason(weak.stopped) == "rung 1 (eval_step 12): val_metric 0.1 below the rung's cutoff 0.5"
    assert [r["eval_step"] for r in weak.history if "eval_step" in r] == [5, 10, 15]  # no report after the stop
    header, rows = trial_table(tmp_path / "sched")
    assert [r[header.index("stopped")] for r in rows] == [None, None, stop_reason(weak.stopped)]
    assert [e["trial_id"] for e in res.selection] == [first.trial_id]


VICTIM = """
import sys
sys.path.insert(0, {tests!r})
import flow_stub
flow_stub.by_value()
from tickettune.searcher.search import run_search
spec = flow_stub.spec_dict({root!r}, "resume-asha", num_samples=3, max_concurrent=1, scheduler="asha")
# 0.5, then 0.1 (stopped at rung 1), then 0.2: killed inside it
run_search(spec, num_cpus=2, flow_fn=flow_stub.stub_flow, space=flow_stub.space_ahead_behind, verbose=0,
           callbacks=[flow_stub.KillAfter(2, {session_file!r})])
print("NOT KILLED")
"""


def _by_score(exp):
    """The trials of `VICTIM`'s search: 0.5, 0.1 (stopped before the kill), 0.2 (killed inside)."""
    by = {t.config["head_ratio"]: t for t in load_trials(exp)}
    return by[0.5], by[0.1], by[0.2]


@pytest.mark.slow  # without Ray in the default run: test_scheduling.py's restored scheduler and resumed-stop tests
def test_a_resumed_search_keeps_its_stops_and_its_rungs(tmp_path):
    session_file = tmp_path / "session.json"
    env = {**os.environ, "TICKETTUNE_TEST_KILL": "1", "TUNE_GLOBAL_CHECKPOINT_S": "0.5", "TICKETTUNE_STUB_SLEEP": "1.0"}
    code = VICTIM.format(tests=str(TESTS), root=str(tmp_path), session_file=str(session_file))
    try:
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    finally:
        if session_file.exists():
            flow_stub.kill_session_leftovers(json.loads(session_file.read_text())["session"])
    assert r.returncode == -9, (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
    exp = tmp_path / "resume-asha"
    first, stopped, killed = _by_score(exp)
    assert (first.status, stopped.status) == ("TERMINATED", "TERMINATED") and killed.status != "TERMINATED"
    assert stopped.stopped is not None and stopped.stopped["cutoff"] == pytest.approx(0.5)
    before = (stopped.trial_dir / "result.json").read_bytes()

    res = resume_search(exp, num_cpus=2, flow_fn=flow_stub.stub_flow, verbose=0)
    assert res.finished and res.statuses == {"TERMINATED": 3}, res
    first, stopped_after, killed = _by_score(exp)  # Tune's state lists restored trials in another order
    # the stopped trial stayed stopped: not run again, its decision kept
    assert (stopped_after.trial_dir / "result.json").read_bytes() == before
    assert stopped_after.stopped == stopped.stopped
    # the restarted trial met the rung as recorded before the kill (0.5 and 0.1: cutoff 0.3); a scheduler that
    # had forgotten them would have had nothing to compare it with, and let it finish
    assert killed.stopped is not None and killed.stopped["cutoff"] == pytest.approx(0.3), killed.stopped
    assert not killed.finished
    assert [e["trial_id"] for e in res.selection] == [first.trial_id]
