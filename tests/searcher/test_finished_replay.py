"""A finished trial that Tune runs again sends its last report again instead of training again (FINISHED.json,
trial.py). Tune saves its state every few seconds: a driver killed right after a trial's final report leaves
that trial RUNNING in the saved state, and `tickettune resume` restarts it (the chaos run measured a finished
trial trained again from scratch, search phase included, before this). Here the saved state is set back to
RUNNING for one finished trial, as such a kill leaves it, and the search resumed."""

import json

import flow_stub
import pytest

from tickettune.searcher.export import load_trials
from tickettune.searcher.resume import resume_search
from tickettune.searcher.search import run_search
from tickettune.searcher.trial import FINISHED, REPLAYED, read_finished

pytestmark = pytest.mark.ray


def test_a_finished_trial_run_again_replays_its_last_report(tmp_path):
    flow_stub.by_value()
    assert flow_stub.ray_is_down()
    spec = flow_stub.spec_dict(tmp_path, "replay", num_samples=2, max_concurrent=1)
    res = run_search(spec, num_cpus=2, flow_fn=flow_stub.stub_flow, space=flow_stub.space, verbose=0)
    assert res.statuses == {"TERMINATED": 2}
    exp = tmp_path / "replay"
    first, second = load_trials(exp)
    kept = read_finished(first.trial_dir)  # the last report as sent: what Tune logged, less its own fields
    assert kept["flow_done"] and all(first.last[k] == v for k, v in kept.items())
    before = (first.trial_dir / "result.json").read_text().splitlines()

    state = max(exp.glob("experiment_state-*.json"), key=lambda p: p.name)
    data = json.loads(state.read_text())
    for row in data["trial_data"]:
        trial = json.loads(row[0])
        if trial["trial_id"] == first.trial_id:
            trial["status"] = "RUNNING"  # what Tune had saved when the driver died
            row[0] = json.dumps(trial)
    state.write_text(json.dumps(data))
    assert {t.trial_id: t.status for t in load_trials(exp)}[first.trial_id] == "RUNNING"

    res = resume_search(exp, num_cpus=2, flow_fn=flow_stub.stub_flow, verbose=0)
    assert res.finished and res.statuses == {"TERMINATED": 2}
    after = (first.trial_dir / "result.json").read_text().splitlines()
    # one new report, nothing trained (Tune keeps the earlier lines only for a trial with a checkpoint: the
    # stub's have none, so a restarted one starts its result file afresh)
    new = [json.loads(line) for line in after if line not in before]
    assert len(new) == 1, new
    replayed = new[0]
    assert replayed[REPLAYED] is True and replayed["flow_done"] is True
    assert replayed["val_metric"] == first.last["val_metric"] and replayed["step"] == first.last["step"]
    assert (second.trial_dir / FINISHED).is_file()
    assert (exp / "best" / "export.json").is_file()
