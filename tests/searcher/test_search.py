"""A search on a local Ray instance (2 CPUs), end to end: a trial, a diverging trial, the early-bird stop,
W&B offline, the exported ticket, the report.

Uses `flow_stub.stub_flow` (the real flow's interface and reports, a tiny model, seconds per trial);
`test_search_flow.py` runs the real flow on SST-2 rows.
"""

import json

import flow_stub
import pytest

from tickettune.searcher.export import load_trials
from tickettune.searcher.report import write_report
from tickettune.searcher.search import ExperimentExists, run_search

pytestmark = pytest.mark.ray


@pytest.fixture(autouse=True)
def _ray_down():
    flow_stub.by_value()
    assert flow_stub.ray_is_down(), "a Ray instance is already up in this process"
    yield
    assert flow_stub.ray_is_down(), "run_search left Ray running"


def test_inline_search_nan_trial_fails_cleanly_wandb_offline_export(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    spec = flow_stub.spec_dict(tmp_path, "inline", num_samples=3, wandb_project="tickettune-tests")
    res = run_search(spec, num_cpus=2, flow_fn=flow_stub.stub_flow, space=flow_stub.space_with_nan, verbose=0)
    exp = tmp_path / "inline"
    assert res.finished and res.num_trials == 3
    assert res.statuses == {"TERMINATED": 2, "ERROR": 1}
    assert res.plan["executor"] == "inline"
    trials = {t.trial_id: t for t in load_trials(exp)}

    # the diverging trial: ERROR, recorded once, not trained again on its retry
    [bad] = [t for t in trials.values() if t.status == "ERROR"]
    assert bad.config["lr"] == 0.9
    failure = json.loads((bad.trial_dir / "FAILED.json").read_text())
    assert failure["error"] == "FloatingPointError" and "nan" in failure["message"]
    assert bad.ticket_dir is None and bad.history == []

    # a trial whose mask did not converge within its budget: stopped there, marked, no ticket
    [unconverged] = [t for t in trials.values() if t.config.get("eps") == 0.001]
    assert unconverged.status == "TERMINATED" and unconverged.converged is False and unconverged.finished
    assert unconverged.last["search_steps"] == unconverged.config["search_max_steps"]
    assert unconverged.ticket_dir is None and unconverged.last["early_bird_step"] == -1

    # the other one stopped its search phase at the early bird, before the budget
    good = [t for t in trials.values() if t.status == "TERMINATED" and t is not unconverged]
    for t in good:
        assert t.finished and t.converged is True
        assert 0 < t.last["early_bird_step"] == t.last["search_steps"] < t.config["search_max_steps"]
        assert any(r.get("early_bird") for r in t.history if r.get("phase") == "search")
        assert t.last["flow_done"] is True  # the flow's "done", renamed: Tune would stop the trial on it

    # the best ticket was exported (reloading it: test_search_flow.py, test_export.py)
    [best] = good
    assert res.exported == str(exp / "best") and res.selection[0]["trial_id"] == best.trial_id
    assert (exp / "best" / "ticket.json").is_file()

    # W&B offline: one run per trial plus the export run with the model artifact, inside the experiment
    runs = sorted((exp / "wandb").glob("offline-run-*"))  # one level: <experiment>/wandb/run-*
    assert len(runs) == 4, runs
    assert all(list(r.glob("*.wandb")) for r in runs)
    export_run = [r for r in runs if b"model" in b"".join(p.read_bytes() for p in r.glob("*.wandb"))]
    assert export_run, "no run logged the model artifact"

    # report: table + plots
    out = write_report(exp, print_table=False)
    assert all(p.endswith(".png") for p in out["plots"])
    assert best.trial_id in out["table"]

    # the same name again is refused before anything starts
    with pytest.raises(ExperimentExists):
        run_search(spec, num_cpus=2, flow_fn=flow_stub.stub_flow, space=flow_stub.space_with_nan, verbose=0)
