"""Trials on Ray Train (the train executor): DDP over gloo with 2 workers per trial, the early-bird stop
agreed between the ranks, and a worker group that dies and is restarted from its last checkpoint."""

import flow_stub
import pytest

from tickettune.searcher.export import load_trials
from tickettune.searcher.search import run_search

pytestmark = pytest.mark.ray


@pytest.fixture(autouse=True)
def _ray_down():
    flow_stub.by_value()
    assert flow_stub.ray_is_down()
    yield
    assert flow_stub.ray_is_down()


def crash_first(trial) -> dict:
    cfg = flow_stub.space(trial)
    cfg["seed"] = flow_stub.CRASH_SEED
    return cfg


def test_ddp_trial_whose_workers_crash_resumes_from_checkpoint(tmp_path):
    spec = flow_stub.spec_dict(tmp_path, "ddp", num_samples=1, workers_per_trial=2, max_failures=1)
    res = run_search(spec, num_cpus=2, flow_fn=flow_stub.stub_flow, space=crash_first, verbose=0)
    assert res.plan["executor"] == "train" and res.plan["num_workers"] == 2
    assert res.plan["max_concurrent_trials"] == 2  # 2 x (0.01 + 2 x 0.495) CPUs: start-ups overlap
    assert res.finished and res.statuses == {"TERMINATED": 1}
    [crashed] = load_trials(tmp_path / "ddp")
    assert crashed.last["world_size"] == 2 and crashed.converged and crashed.ticket_dir is not None
    # the Train run lives in the trial folder under a name derived from the trial id
    assert (crashed.trial_dir / f"train_{crashed.trial_id}").is_dir()
    # the new worker group started from the checkpoint taken at step 5, not from scratch
    assert crashed.last["resumed_from"] == 5
    steps = [r["step"] for r in crashed.history if r.get("phase") == "search"]
    assert steps[0] == 5 and steps[1] == 10  # reported once before the crash, then continued after it
    assert res.exported is not None


def asha_space(trial) -> dict:
    """Trial 0 scores high, trial 1 low (the stub's interim val_metric is head_ratio), trial 2 high again;
    a tight ε keeps every search phase going past ASHA's first rung."""
    cfg = flow_stub.space(trial)
    cfg.update(head_ratio=[0.5, 0.1, 0.6][trial.number % 3], eps=0.05)
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["train", "inline"])
def test_asha_stop_does_not_leak_or_block_the_next_trial(tmp_path, monkeypatch, executor):
    """ASHA stops trial 1 (Tune kills its driver mid-fit): Ray Train's placement group must be freed
    (the dashboard's cleaner), or trial 2 would wait for CPUs forever (the 2.60 hang); and the next
    trial must get a working process (no actor reuse with a scheduler)."""
    monkeypatch.setenv("TICKETTUNE_STUB_INTERIM", "1")  # the local Ray instance's workers inherit it
    spec = flow_stub.spec_dict(tmp_path, "asha", num_samples=3, max_concurrent=1, scheduler="asha")
    res = run_search(spec, num_cpus=2, executor=executor, flow_fn=flow_stub.stub_flow, space=asha_space, verbose=0)
    trials = load_trials(tmp_path / "asha")
    assert res.finished and len(trials) == 3 and all(t.status == "TERMINATED" for t in trials)
    stopped = [t for t in trials if not t.finished]
    assert [t.config["head_ratio"] for t in stopped] == [0.1]  # stopped by ASHA at its first rung
    assert trials[2].finished and trials[2].ticket_dir is not None  # the next trial got its CPUs


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_diverging_train_trial_fails_once_and_the_search_goes_on(tmp_path, workers):
    """Loss NaN inside Ray Train workers: the trial ends in ERROR with FAILED.json, its retries fail at once
    (no second training run), and the other trial finishes."""
    spec = flow_stub.spec_dict(tmp_path, "nan", num_samples=2, workers_per_trial=workers, max_failures=1)
    res = run_search(
        spec, num_cpus=2, executor="train", flow_fn=flow_stub.stub_flow, space=flow_stub.space_with_nan, verbose=0
    )
    assert res.finished and res.statuses == {"TERMINATED": 1, "ERROR": 1}
    [bad] = [t for t in load_trials(tmp_path / "nan") if t.status == "ERROR"]
    assert (bad.trial_dir / "FAILED.json").is_file() and "FloatingPointError" in bad.error
    assert bad.history == []
