"""scripts/diagnostics/levers.py --smoke on a tiny random BERT: every arm runs, the JSON has its ratios."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_smoke_runs_every_arm_and_writes_ratios(tmp_path):
    from diagnostics import levers as bench

    from tickettune.trainables.testing.random_models import write_random_model

    model = write_random_model("bert", tmp_path / "bert")
    out = tmp_path / "levers.json"
    bench.main(["--smoke", "--model", str(model), "--json", str(out)])
    res = json.loads(out.read_text())
    assert set(res["lever_over_today"]["dense"]) == set(bench.ARMS)
    assert res["lever_over_today"]["ticket"]["today"] == 1.0
    assert all(v > 0 for v in res["ticket_over_dense"].values())
    assert res["machine"]["cpu"]["model_name"] and res["steps_timed_per_arm"] == 2


def test_float_masks_keep_the_distribution():
    from diagnostics.levers import FloatMaskDropout, use_float_masks

    x = torch.ones(200_000)
    drop = nn.Dropout(0.25)
    assert use_float_masks(nn.Sequential(drop)) == 1 and isinstance(drop, FloatMaskDropout)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.75) < 0.005 and torch.allclose(y[kept], torch.tensor(1 / 0.75))
    drop.eval()
    assert torch.equal(drop(x), x)
