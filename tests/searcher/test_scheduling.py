"""Trial scheduling without a Ray cluster: `RungScheduler` (ASHA) fed results as Tune feeds them. It stops a
trial that is behind at a rung and says why, never the baseline, never a trial on its last report; its rungs and
stops survive a new scheduler (what Tune unpickles on resume); the report shows a stop, export skips it."""

import json
import pickle
from types import SimpleNamespace

import pytest
from ray.tune.schedulers import TrialScheduler
from search_fakes import FOUR, make_experiment

from tickettune.searcher.export import export_best, load_trials
from tickettune.searcher.report import trial_table
from tickettune.searcher.scheduling import RungScheduler, make_scheduler, with_rung_evaluations
from tickettune.searcher.stops import STOPS_FILE, stop_reason, stopped_trials, write_scheduler_state
from tickettune.spaces.spec import load_spec

STOP, GO = TrialScheduler.STOP, TrialScheduler.CONTINUE


def _spec(tmp_path, **search):
    return load_spec(
        {
            "name": "s",
            "storage": str(tmp_path),
            "search": {"scheduler": "asha", **search},
            "fixed": {"task": "sst2", "budget_steps": 8, "search_max_steps": 4},  # max_t 8, grace 2: rungs 2, 4, 8
            "space": {"head_ratio": {"low": 0.1, "high": 0.5}},
        }
    )


def _trial(tid, baseline=False, storage=None):
    return SimpleNamespace(trial_id=tid, config={"baseline": True} if baseline else {}, storage=storage)


def _scheduler(tmp_path, **search) -> RungScheduler:
    return make_scheduler(with_rung_evaluations(_spec(tmp_path, **search)), tmp_path)


def _at(step, value, **more):
    return {"eval_step": step, "val_metric": value, **more}


def test_behind_at_a_rung_stops_with_its_reason_and_the_baseline_never(tmp_path):
    s = _scheduler(tmp_path)
    assert [m for m, _ in s._brackets[0]._rungs] == [8, 4, 2]
    a, base, b, c = _trial("a"), _trial("base", baseline=True), _trial("b"), _trial("c")
    for t in (a, base, b, c):
        s.on_trial_add(None, t)
    assert s.on_trial_result(None, a, _at(2, 0.80)) == GO  # first at the rung: nothing to compare with
    # the baseline: far behind at every rung, judged never, and its values set no cutoff
    assert [s.on_trial_result(None, base, _at(t, 0.10, baseline=True)) for t in (2, 4, 6)] == [GO] * 3
    assert s.on_trial_result(None, b, _at(2, 0.50)) == STOP
    assert s.on_trial_result(None, c, _at(3, 0.85)) == GO  # above the median of 0.80 and 0.50 at rung 2
    assert s.on_trial_result(None, a, _at(4, 0.90)) == GO
    # behind at rung 4 on the report that ends it: it finished on its own, not stopped
    assert s.on_trial_result(None, c, _at(4, 0.20, flow_done=True)) == GO
    s.on_trial_complete(None, base, _at(40, 0.1, baseline=True))

    stops = stopped_trials(tmp_path)
    assert list(stops) == ["b"]
    assert stops["b"]["value"] == 0.5 and stops["b"]["cutoff"] == pytest.approx(0.8) and stops["b"]["at"] == 2
    assert stop_reason(stops["b"]) == "rung 1 (eval_step 2): val_metric 0.5 below the rung's cutoff 0.8"
    rungs = json.loads((tmp_path / STOPS_FILE).read_text())["rungs"]
    assert rungs["2"] == {"a": 0.8, "b": 0.5, "c": 0.85} and rungs["4"] == {"a": 0.9, "c": 0.2}


def test_a_cheaper_first_rung_and_a_larger_reduction_factor_stop_more_and_sooner(tmp_path):
    """first_rung 1/8 of max_t 24 with reduction factor 3: rungs at 3 and 9; a trial goes on only from the top
    third of those judged at its rung before it."""
    spec = load_spec(
        {
            "name": "s",
            "storage": str(tmp_path),
            "search": {"scheduler": "asha", "first_rung": 0.125, "reduction_factor": 3},
            "fixed": {"task": "sst2", "budget_steps": 24, "search_max_steps": 4},
            "space": {"head_ratio": {"low": 0.1, "high": 0.5}},
        }
    )
    assert with_rung_evaluations(spec).fixed["eval_interval"] == 3
    s = make_scheduler(with_rung_evaluations(spec), tmp_path)
    assert [m for m, _ in s._brackets[0]._rungs] == [9, 3]
    trials = [_trial(t) for t in "abcd"]
    for t in trials:
        s.on_trial_add(None, t)
    decisions = [s.on_trial_result(None, t, _at(3, v)) for t, v in zip(trials, (0.9, 0.8, 0.85, 0.95))]
    # b: below a's 0.9; c: below the top third of 0.9 and 0.8 (with rf 2 it would go on: it equals their median)
    assert decisions == [GO, STOP, STOP, GO]
    assert set(stopped_trials(tmp_path)) == {"b", "c"}


def test_a_rung_a_few_steps_before_the_end_stops_nobody(tmp_path):
    """max_t 25, grace 6: ASHA's rungs at 6, 12 and 24; at 24 a trial has spent its budget: recorded, not stopped."""
    spec = load_spec(
        {
            "name": "s",
            "storage": str(tmp_path),
            "search": {"scheduler": "asha"},
            "fixed": {"task": "sst2", "budget_steps": 25, "search_max_steps": 4},
            "space": {"head_ratio": {"low": 0.1, "high": 0.5}},
        }
    )
    s = make_scheduler(with_rung_evaluations(spec), tmp_path)
    assert [m for m, _ in s._brackets[0]._rungs] == [24, 12, 6]
    a, b = _trial("a"), _trial("b")
    s.on_trial_add(None, a), s.on_trial_add(None, b)
    assert [s.on_trial_result(None, a, _at(t, 0.9)) for t in (6, 12, 24)] == [GO] * 3
    assert [s.on_trial_result(None, b, _at(t, 0.95)) for t in (6, 12)] == [GO] * 2
    assert s.on_trial_result(None, b, _at(24, 0.1)) == GO and not stopped_trials(tmp_path)
    assert s._brackets[0]._rungs[0][1] == {"a": 0.9, "b": 0.1}


def test_first_rung_steps_and_bad_settings_are_named():
    from pydantic import ValidationError

    from tickettune.spaces.settings import SearchSettings

    assert SearchSettings().first_rung_steps(804) == 201 and SearchSettings().first_rung_steps(625) == 156
    assert SearchSettings(first_rung=0.125).first_rung_steps(804) == 100 and SearchSettings().first_rung_steps(3) == 1
    for bad in ({"first_rung": 0.0}, {"first_rung": 0.75}, {"reduction_factor": 1}, {"reduction_factor": 2.5}):
        with pytest.raises(ValidationError, match=next(iter(bad))):
            SearchSettings(**bad)


def test_a_minimised_metric_stops_above_the_cutoff(tmp_path):
    s = _scheduler(tmp_path, mode="min")
    a, b = _trial("a"), _trial("b")
    s.on_trial_add(None, a), s.on_trial_add(None, b)
    assert s.on_trial_result(None, a, _at(2, 30.0)) == GO
    assert s.on_trial_result(None, b, _at(2, 40.0)) == STOP
    stop = stopped_trials(tmp_path)["b"]
    assert stop["cutoff"] == pytest.approx(30.0) and "val_metric 40 above the rung's cutoff 30" in stop_reason(stop)


def test_rungs_on_the_dev_loss_stop_the_higher_loss_while_the_metric_is_flat(tmp_path):
    """rung_metric val_loss: two trials tied on the metric (CoLA's MCC 0 early) are told apart by their loss."""
    s = _scheduler(tmp_path, rung_metric="val_loss")
    assert (s._metric, s._mode) == ("val_loss", "min")
    a, b = _trial("a"), _trial("b")
    s.on_trial_add(None, a), s.on_trial_add(None, b)
    assert s.on_trial_result(None, a, _at(2, 0.0, val_loss=0.58)) == GO
    assert s.on_trial_result(None, b, _at(2, 0.0, val_loss=0.61)) == STOP
    stop = stopped_trials(tmp_path)["b"]
    assert stop_reason(stop) == "rung 1 (eval_step 2): val_loss 0.61 above the rung's cutoff 0.58"


def test_a_restored_scheduler_judges_against_the_rungs_recorded_before(tmp_path):
    """Tune's resume unpickles the scheduler as it was when the search started (empty rungs): it reloads them."""
    pickled = pickle.dumps(_scheduler(tmp_path))  # what tuner.pkl holds
    s = pickle.loads(pickled)
    a, b = _trial("a"), _trial("b")
    s.on_trial_add(None, a), s.on_trial_add(None, b)
    s.on_trial_result(None, a, _at(2, 0.80))
    assert s.on_trial_result(None, b, _at(2, 0.50)) == STOP

    restored = pickle.loads(pickled)
    d = _trial("d")
    restored.on_trial_add(None, d)
    assert restored.on_trial_result(None, d, _at(2, 0.60)) == STOP  # cutoff 0.65: the median of a's and b's
    assert set(stopped_trials(tmp_path)) == {"b", "d"}  # b's decision kept
    fresh = _scheduler(tmp_path / "elsewhere")
    fresh.on_trial_add(None, d)
    assert fresh.on_trial_result(None, d, _at(2, 0.60)) == GO  # without the rungs: nothing to compare with


def test_rungs_recorded_on_another_clock_are_not_compared_but_their_stops_stay(tmp_path):
    """An experiment whose rungs counted ticket steps (an earlier tickettune) resumes on the trial's steps: the
    old values are not a cutoff at the new rungs; the trial it stopped stays stopped."""
    old_stop = {"rung": 1, "rungs": 3, "milestone": 2, "at": 2, "value": 0.1, "cutoff": 0.5, "compared": 1, "time": 0}
    write_scheduler_state(
        tmp_path,
        {
            "metric": "val_metric",
            "mode": "max",
            "time_attr": "ticket_step",
            "rungs": {"2": {"a": 0.9}},
            "stopped": {"b": old_stop},
        },
    )
    s = _scheduler(tmp_path)
    d = _trial("d")
    s.on_trial_add(None, d)
    assert s.on_trial_result(None, d, _at(2, 0.60)) == GO  # 0.9 on the old clock is not this rung's cutoff
    assert set(stopped_trials(tmp_path)) == {"b"}
    assert (
        stop_reason(stopped_trials(tmp_path)["b"])
        == "rung 1 (ticket_step 2): val_metric 0.1 below the rung's cutoff 0.5"
    )


def test_a_moved_experiment_keeps_its_record_where_tune_now_writes(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    new.mkdir()
    s = _scheduler(old)
    t = _trial("a", storage=SimpleNamespace(experiment_fs_path=str(new)))
    s.on_trial_add(None, t)
    s.on_trial_result(None, t, _at(2, 0.8))
    assert (new / STOPS_FILE).is_file() and not (old / STOPS_FILE).exists()


def test_no_scheduler_when_none(tmp_path):
    assert make_scheduler(_spec(tmp_path, scheduler="none"), tmp_path) is None


def _stop_b(exp):
    stop = {"rung": 1, "rungs": 3, "milestone": 2, "at": 2, "value": 0.5, "cutoff": 0.8, "compared": 1, "time": 0}
    write_scheduler_state(
        exp, {"metric": "val_metric", "mode": "max", "time_attr": "eval_step", "rungs": {}, "stopped": {"b": stop}}
    )


def test_a_stopped_trial_is_never_exported_and_the_report_says_why(tmp_path):
    exp = make_experiment(tmp_path, FOUR)  # b is the best
    _stop_b(exp)
    [best] = export_best(exp, tmp_path / "best")
    assert best["trial_id"] == "a"
    front = export_best(exp, tmp_path / "front", pareto=True)
    assert "b" not in {e["trial_id"] for e in front}
    with pytest.raises(ValueError, match=r"the scheduler stopped it, rung 1 \(eval_step 2\)"):
        export_best(exp, tmp_path / "chosen", trial="b")
    header, rows = trial_table(exp)
    stopped = {r[0]: r[header.index("stopped")] for r in rows}
    assert stopped == {
        "a": None,
        "b": "rung 1 (eval_step 2): val_metric 0.5 below the rung's cutoff 0.8",
        "c": None,
        "d": None,
        "e": None,
    }
    assert {t.trial_id: t.stopped is not None for t in load_trials(exp)}["b"]


def test_a_record_of_another_version_is_refused(tmp_path):
    (tmp_path / STOPS_FILE).write_text(json.dumps({"version": 99}))
    with pytest.raises(ValueError, match="version 99, expected 1"):
        stopped_trials(tmp_path)
