"""A search whose trials fail: W&B's callback survives a trial that never reported, the console's last line
says how many failed and why, and a search in which no trial finished exits non-zero."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import flow_stub
import pytest

from tickettune.searcher import cli
from tickettune.searcher.outcome import Outcome, exit_status, outcome_of

DIE_SEED = 99  # a trial with this seed dies before its first report


def dying_flow(cfg, reporter, ticket_dir: str | None = None):
    """`flow_stub.stub_flow`, except that a trial with seed DIE_SEED kills its process before any report."""
    if cfg.seed == DIE_SEED:
        os._exit(3)
    return flow_stub.stub_flow(cfg, reporter, ticket_dir=ticket_dir)


def space_dying_second(trial) -> dict:
    cfg = flow_stub.space(trial)
    cfg["seed"] = DIE_SEED if trial.number == 1 else 0
    return cfg


def space_all_dying(trial) -> dict:
    return {**flow_stub.space(trial), "seed": DIE_SEED}


def _by_value() -> None:
    import ray.cloudpickle

    flow_stub.by_value()
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


# ------------------------------------------------------------------------------------- without Ray running


class FakeTrial:
    """What the callbacks read of a Tune trial (hashable, as Tune's is)."""

    def __init__(self, trial_id: str, config: dict | None = None):
        self.trial_id, self.config = trial_id, config


def record(tid: str, status: str, error: str | None = None):
    return SimpleNamespace(trial_id=tid, status=status, error=error)


def test_outcome_names_the_failures_and_the_first_reason():
    out = outcome_of(
        [record("a", "TERMINATED"), record("b", "ERROR", "RayActorError: died"), record("c", "ERROR", "x")], 3
    )
    assert (out.finished, out.failed) == (1, 2)
    assert (
        out.line("demo") == "[tickettune] demo: 1 of 3 trials finished, 2 failed; first: trial b: RayActorError: died"
    )
    assert exit_status(out) == 0


def test_no_finished_trial_or_a_failed_export_is_a_failure():
    none_finished = outcome_of([record("a", "ERROR", "boom")], 1)
    assert exit_status(none_finished) == 1
    assert exit_status(Outcome(planned=2, finished=2, failed=0, export_error="disk full")) == 1


def test_an_actor_that_never_started_gets_the_auth_hint(monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    reason = "The actor died because ... was cancelled before it started running"
    line = outcome_of([record("a", "ERROR", reason)], 1).line("demo")
    assert "RAY_AUTH_MODE=token" in line and "RAY_AUTH_MODE=disabled" in line


def _wandb_callback(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    from tickettune.searcher.tracking import wandb_callback

    return wandb_callback("p", group="g", experiment_dir=tmp_path)


def test_wandb_ends_a_trial_that_never_reported(tmp_path, monkeypatch):
    """Ray's own callback raises KeyError here (no logging actor, no queue): that ended whole searches."""
    from ray.air.integrations.wandb import WandbLoggerCallback

    cb = _wandb_callback(tmp_path, monkeypatch)
    trial = FakeTrial("t0")
    with pytest.raises(KeyError):
        WandbLoggerCallback.log_trial_end(cb, trial, failed=True)
    cb.on_trial_error(iteration=0, trials=[trial], trial=trial)
    assert cb.errors == {}


def test_a_wandb_error_stays_with_its_trial(tmp_path, monkeypatch, capsys):
    cb = _wandb_callback(tmp_path, monkeypatch)
    trial = FakeTrial("t1", config=None)  # log_trial_start fails on it (config.copy())
    cb.on_trial_start(iteration=0, trials=[trial], trial=trial)
    assert "t1" in cb.errors and "on_trial_start" in cb.errors["t1"]
    assert "trial t1: W&B logging failed" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- Ray


@pytest.mark.ray
def test_a_trial_dying_before_its_first_report_leaves_the_search_going(tmp_path, monkeypatch):
    """W&B offline on; one trial's process dies before it reports (no retry): it is ERROR with its reason,
    the others finish, the best is exported."""
    from tickettune.searcher.export import load_trials
    from tickettune.searcher.search import run_search

    _by_value()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    spec = flow_stub.spec_dict(tmp_path / "runs", "dies", num_samples=3, max_failures=0, wandb_project="tt-test")
    res = run_search(spec, flow_fn=dying_flow, space=space_dying_second, verbose=0, num_cpus=2)
    assert flow_stub.ray_is_down()
    assert res.statuses == {"TERMINATED": 2, "ERROR": 1}, res.statuses
    assert res.outcome.failed == 1 and res.outcome.first_failure
    assert res.exported is not None and exit_status(res.outcome) == 0
    dead = [t for t in load_trials(tmp_path / "runs" / "dies") if t.status == "ERROR"]
    assert dead and dead[0].ticket_dir is None
    runs = list((tmp_path / "runs" / "dies" / "wandb").glob("offline-run-*"))
    assert len(runs) >= 2  # the trials that reported have their runs


@pytest.mark.ray
def test_a_search_where_every_trial_fails_exits_non_zero(tmp_path, capsys):
    from tickettune.searcher.search import run_search

    _by_value()
    spec = flow_stub.spec_dict(tmp_path / "runs", "all_die", num_samples=2, max_failures=0)
    res = run_search(spec, flow_fn=dying_flow, space=space_all_dying, verbose=0, num_cpus=2)
    assert res.finished and res.statuses == {"ERROR": 2} and res.exported is None
    capsys.readouterr()
    assert cli._ended(res) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("[tickettune] all_die: 0 of 2 trials finished, 2 failed; first: trial ")


def test_the_cli_exits_non_zero_when_no_trial_finished(tmp_path, monkeypatch, capsys):
    """The command line's own path: `tickettune search` returns what the outcome says."""
    from tickettune.searcher import search as search_mod

    failed = search_mod.SearchResult(str(tmp_path / "x"), 1, {"ERROR": 1}, True)
    failed.outcome = outcome_of([record("a", "ERROR", "ValueError: bad")], 1)
    monkeypatch.setattr(search_mod, "run_search", lambda *a, **k: failed)
    space = Path(__file__).resolve().parents[2] / "spaces" / "demo.yaml"
    assert cli.main(["search", str(space)]) == 1
    assert "0 of 1 trials finished, 1 failed; first: trial a: ValueError: bad" in capsys.readouterr().err
