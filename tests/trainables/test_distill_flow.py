"""Distillation in a trial (ticket/distill.py):
the dense baseline writes the teacher cache and counts it in its own time
and FLOPs; a ticket phase reads it and never calls a teacher model; one that starts before the cache exists trains
without it and says so; `teacher` (standalone) writes the cache first; a cache for other rows is refused before
any compute."""

import json
from pathlib import Path

import pytest

from tickettune.trainables.config import FlowConfig
from tickettune.trainables.flow import run_flow
from tickettune.trainables.reporter import LocalReporter
from tickettune.trainables.testing.random_models import write_random_model
from tickettune.trainables.ticket import distill, teacher_cache
from tickettune.trainables.ticket.format import read_info


@pytest.fixture
def trial(tiny_sst2, one_thread):
    base = {**tiny_sst2, "max_train_samples": 96, "max_eval_samples": 32, "budget_steps": 12, "search_max_steps": 6}
    return lambda **kw: FlowConfig(**{**base, "eps": 0.5, "unconverged": "ticket", "report_interval": 2, **kw})


def _no_teacher_runs(monkeypatch):
    """Any teacher model run (or load) from here on fails the test."""

    def refuse(*a, **k):
        raise AssertionError("a teacher model ran")

    monkeypatch.setattr(teacher_cache, "teacher_logits", refuse)
    monkeypatch.setattr(distill, "load_model", refuse)


def test_the_baseline_writes_the_cache_and_a_ticket_distills_from_it(trial, tmp_path, monkeypatch):
    cache = str(tmp_path / "teacher_cache")
    base = run_flow(trial(baseline=True, teacher_cache=cache), LocalReporter(verbose=False))
    assert base.teacher["written"] and base.seconds["teacher_cache"] > 0
    assert teacher_cache.read_info(cache)["made_for"]["rows"] == 96
    assert base.relative_cost > 1.0  # the cache's forward passes, counted once: in the baseline's figures
    assert base.history[-1]["train_seconds"] == pytest.approx(base.seconds["ticket"] + base.seconds["teacher_cache"])

    _no_teacher_runs(monkeypatch)
    reporter = LocalReporter(verbose=False)
    teacher = str(tmp_path / "a_teacher_that_must_not_run")  # with its cache there, only the cache is read
    cfg = trial(distill_weight=1.0, distill_temperature=2.0, teacher_cache=cache, teacher=teacher)
    got = run_flow(cfg, reporter, ticket_dir=str(tmp_path / "ticket"))
    assert got.teacher["used"] and not got.teacher["written"] and got.teacher["cache"] == cache
    assert reporter.history[-1]["distilled"] is True
    assert read_info(tmp_path / "ticket")["distill"]["used"] is True
    plain = run_flow(trial(), LocalReporter(verbose=False))
    assert got.search_steps == plain.search_steps  # the same search (the index changes no batch) ...
    assert got.history[0]["loss"] == plain.history[0]["loss"]
    assert got.history[-2]["loss"] != plain.history[-2]["loss"]  # ... and a ticket phase the term changed


def test_a_ticket_phase_before_the_cache_trains_without_it(trial, tmp_path):
    reporter = LocalReporter(verbose=False)
    got = run_flow(trial(distill_weight=1.0, teacher_cache=str(tmp_path / "not_yet")), reporter)
    assert not got.teacher["used"] and "not written yet" in got.teacher["why"]
    assert reporter.history[-1]["distilled"] is False and got.ticket_steps > 0


def test_a_cache_for_other_rows_is_refused_before_any_compute(trial, tmp_path, monkeypatch):
    cache = str(tmp_path / "teacher_cache")
    run_flow(trial(baseline=True, teacher_cache=cache), LocalReporter(verbose=False))
    calls = []
    monkeypatch.setattr("tickettune.trainables.flow.search_phase", lambda *a: calls.append(a))
    with pytest.raises(teacher_cache.TeacherCacheMismatch, match="max_length: cache 32, this run 24"):
        run_flow(trial(distill_weight=1.0, teacher_cache=cache, max_length=24), LocalReporter(verbose=False))
    with pytest.raises(teacher_cache.TeacherCacheMismatch, match="rows: cache 96, this run 64"):
        run_flow(trial(baseline=True, teacher_cache=cache, max_train_samples=64), LocalReporter(verbose=False))
    assert calls == []


def test_a_standalone_teacher_writes_the_cache_first(trial, tmp_path):
    teacher = write_random_model("bert", tmp_path / "teacher", "tiny")
    reporter = LocalReporter(verbose=False)
    got = run_flow(trial(teacher=str(teacher), distill_weight=0.5), reporter)
    assert got.teacher["written"] and got.teacher["used"] and got.teacher["seconds"] > 0
    assert got.seconds["teacher_cache"] == pytest.approx(got.teacher["seconds"])
    # the cache's time is the run's: the clock's total holds search + cache + ticket
    total = got.seconds["search"] + got.seconds["teacher_cache"] + got.seconds["ticket"]
    assert reporter.history[-1]["train_seconds"] == pytest.approx(total)
    assert not Path(got.teacher["cache"]).exists()  # a temporary cache, gone with the run
    kept = tmp_path / "kept"
    again = run_flow(trial(teacher=str(teacher), distill_weight=0.5, teacher_cache=str(kept)), LocalReporter(False))
    assert again.teacher["written"] and json.loads((kept / teacher_cache.INFO).read_text())["kind"] == "classification"


def test_mlm_is_not_distilled():
    with pytest.raises(ValueError, match="MLM tasks are not distilled"):
        distill.check(distill.Distill(weight=1.0), type("T", (), {"head": "mlm"})())
