"""The pre-training benchmark's clock (scripts/benchkit/budget_clock.py) and a tiny run of every arm of
scripts/bench/pld_pretrain.py: PLD, EarlyBERT and both against the baseline's final held-out loss."""

from __future__ import annotations

import time

import pytest
import torch
from benchkit.budget_clock import BudgetSchedule, HeldOutCurve, time_to_loss


def test_time_to_loss_interpolates_between_the_bracketing_scores():
    pts = [
        {"train_seconds": 10.0, "loss": 8.0},
        {"train_seconds": 20.0, "loss": 6.0},
        {"train_seconds": 30.0, "loss": 5.0},
    ]
    assert time_to_loss(pts, 7.0) == pytest.approx(15.0)
    assert time_to_loss(pts, 5.0) == pytest.approx(30.0)
    assert time_to_loss(pts, 9.0) == pytest.approx(10.0)  # reached at the first score
    assert time_to_loss(pts, 4.9) is None


def test_scoring_time_is_paused_out_of_the_budget():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    clock = BudgetSchedule(opt, seconds=10.0, warmup_ratio=0.0)
    clock.before_step(0)
    curve = HeldOutCurve(clock, every=0.0001, score=lambda: time.sleep(0.3) or 1.0)
    time.sleep(0.02)
    curve.after_step(1, {})
    assert len(curve.points) == 1
    assert clock.elapsed() < 0.2  # the 0.3 s of scoring does not count
    clock.drive(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0))  # EarlyBERT's ticket
    curve.after_step(2, {})
    assert len(curve.points) == 2 and clock.elapsed() < 0.2 and clock.peaks == [2.0]


@pytest.mark.slow  # a benchmark's smoke run; its clock is tested above
def test_every_arm_runs_on_its_budget_and_is_measured_against_the_baseline(tmp_path):
    from bench import pld_pretrain as bench

    res = bench.main(
        [
            "--seconds",
            "4",
            "--layers",
            "2",
            "--hidden",
            "64",
            "--heads",
            "4",
            "--seq-len",
            "32",
            "--batch-size",
            "8",
            "--eval-every",
            "1",
            "--eval-blocks",
            "16",
            "--threads",
            "1",
            "--search-fraction",
            "0.5",
            "--mask-interval",
            "2",
            "--window",
            "2",
            "--json",
            str(tmp_path / "p.json"),
            "--plot",
            str(tmp_path / "p.png"),
        ]
    )
    arms = res["arms"]
    assert list(arms) == list(bench.ARMS)
    for arm, r in arms.items():
        assert r["steps"] > 0 and r["curve"], arm
        assert r["seconds"] == pytest.approx(4.0, abs=2.0), arm  # training seconds, scoring excluded
        assert r["curve"][-1]["loss"] == r["heldout_mlm_loss"]
        assert r["curve"][-1]["train_seconds"] == pytest.approx(r["seconds"], abs=1e-3)  # one clock to the end
    assert arms["base"]["seconds_to_base_loss"] is not None
    assert arms["base"]["time_to_base_loss_ratio"] == pytest.approx(1.0)
    for arm in ("earlybert", "earlybert_pld"):
        r = arms[arm]
        assert 0 < r["search_steps"] < r["steps"]
        assert r["kept_heads"] == [3, 3]  # 1/3 of 4 heads pruned in each layer
        assert sum(r["kept_ffn"]) < 2 * 256
        assert r["ticket_parameters"] < res["parameters"]
    assert arms["earlybert_pld"]["pld"] and arms["pld"]["layer_fraction"] < 1.0
    assert (tmp_path / "p.json").exists() and (tmp_path / "p.png").stat().st_size > 0
