"""scripts/diagnostics/: profile_step.py (where a step's time goes, dense against its ticket), compile_dynamic.py
(torch.compile with a symbolic length) and ffn_widths.py (a pruned FFN's GEMMs) run and write what they measured;
bench/ticket_speed.py's fast_path variant trains as the loop does."""

from __future__ import annotations

import json

import pytest
from diagnostics import compile_dynamic as bench_compile_dynamic
from diagnostics import profile_step


def test_ops_fall_into_the_groups_that_say_whether_pruning_shrinks_them():
    assert profile_step.group_of("aten::addmm") == "matmul (Linear)"
    assert profile_step.group_of("aten::bmm") == "attention (bmm, softmax, sdpa)"
    assert profile_step.group_of("aten::_fused_adamw_") == "optimizer (AdamW, clipping)"
    assert profile_step.group_of("aten::bernoulli_") == "dropout"
    assert profile_step.group_of("aten::view").startswith("other ops")
    t = profile_step.table({"aten::mm": 6.0, "aten::view": 4.0}, {"aten::mm": 3.0, "aten::view": 4.0})
    assert t["total"]["ratio"] == pytest.approx(0.7)
    assert t["groups"]["matmul (Linear)"]["ratio"] == pytest.approx(0.5)
    assert t["groups"]["matmul (Linear)"]["dense_share"] == pytest.approx(0.6)


@pytest.mark.slow  # a benchmark's smoke run
def test_profile_smoke_writes_both_paths(tmp_path, shared_data, one_thread):
    out = tmp_path / "profile.json"
    res = profile_step.main(["--smoke", "--threads", "1", "--data-root", str(shared_data), "--json", str(out)])
    assert json.loads(out.read_text())["paths"].keys() == {"fast_path", "plain"}
    plain = res["paths"]["plain"]
    assert plain["levers"] == {"precision": "auto", "embeddings": "train", "dropout": None}
    for p in res["paths"].values():
        mm = p["groups"]["matmul (Linear)"]
        assert mm["dense_ms"] > mm["ticket_ms"] > 0  # the ticket's Linears are narrower
        assert 0 < p["total"]["ratio"] < 1.5
    assert "dropout" in plain["groups"] and plain["groups"]["dropout"]["dense_ms"] > 0  # the model's 0.1
    assert 0.5 < res["flop_ratio_at_16"] < 0.75 and "model_name" in res["machine"]


@pytest.mark.slow
def test_compile_dynamic_smoke_compiles_one_graph_per_model_and_reuses_it(tmp_path, shared_data):
    res = bench_compile_dynamic.main(["--smoke", "--data-root", str(shared_data), "--json", str(tmp_path / "c.json")])
    for m in res["models"].values():
        assert m["graphs_first_compiled_run"] >= 1 and m["graphs_second_compiled_run"] == 0
        assert m["steady_compiled_over_eager"] > 0


@pytest.mark.slow  # a benchmark's smoke run
def test_ffn_widths_smoke_times_each_width_against_the_dense_one(tmp_path):
    from diagnostics import ffn_widths as bench_ffn_widths

    res = bench_ffn_widths.main(["--smoke", "--threads", "1", "--json", str(tmp_path / "w.json")])
    for rows in res["dtypes"].values():
        assert rows["1536"]["time_ratio"] == pytest.approx(1.0) and rows["1536"]["flop_ratio"] == 1.0
        assert rows["1024"]["ms"] > 0 and rows["1024"]["flop_ratio"] == pytest.approx(1024 / 1536)
    with pytest.raises(SystemExit):
        bench_ffn_widths.parse_args(["--widths", "1536"])


def test_ticket_speed_prepares_the_fast_path_as_the_loop_trains_it():
    import torch
    from benchkit.ticket_step import prepare

    from tickettune.trainables.model.build import ScratchConfig, scratch_model
    from tickettune.trainables.training.optimizer import TrainOptimizer
    from tickettune.trainables.training.precision import Precision

    model, _ = scratch_model(ScratchConfig(layers=1, heads=2, hidden=16, ffn=32), head="classification")
    m, opt, _ = prepare(model, "fast_path", True, Precision.of("bf16-master", "cpu"))
    assert isinstance(opt, TrainOptimizer) and opt.working_dtype == torch.bfloat16  # fp32 masters, bf16 blocks
    assert any(p.dtype == torch.bfloat16 for p in m.parameters())
    assert not m.get_input_embeddings().weight.requires_grad
    assert all(d.p == 0 for d in m.modules() if isinstance(d, torch.nn.Dropout))
