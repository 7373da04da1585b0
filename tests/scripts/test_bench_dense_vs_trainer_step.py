"""scripts/diagnostics/dense_vs_trainer_step.py: every arm times the steps it was given, on the same batches."""

import json

import pytest
from diagnostics import dense_vs_trainer_step as bench


@pytest.mark.slow
def test_every_arm_times_its_steps_and_ratios_are_against_the_trainer(tmp_path):
    out = tmp_path / "s.json"
    res = bench.main(["--task", "sst2", "--steps", "5", "--rounds", "1", "--json", str(out)])
    assert set(res["arms"]) == set(bench.ARMS)
    for arm, row in res["arms"].items():
        assert row["steps"] == 2 and row["wall_ms"] > 0 and row["cpu_ms"] > 0, arm  # 5 steps, 3 warm-up dropped
    assert res["arms"]["hf_trainer"]["wall_vs_hf_trainer"] == 1.0
    assert json.loads(out.read_text())["machine"]["model_name"]
