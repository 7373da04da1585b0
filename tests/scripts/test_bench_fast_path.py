"""scripts/bench/fast_path.py --smoke runs (real SST-2 batches, MiniLM), and bench/time_to_accuracy.py takes every
ratio against the faster Trainer arm and checks its --set overrides before running anything."""

from __future__ import annotations

import json

import pytest
from benchkit.bench import flow_config

from bench import fast_path as bench_fast_path
from bench import time_to_accuracy as tta


def test_padding_share_counts_the_padded_tokens_of_an_epoch():
    lengths = [3, 5, 8, 8]
    assert bench_fast_path.padding_share(lengths, 4, None) == pytest.approx(1 - 24 / 32)
    assert bench_fast_path.padding_share(lengths, 4, 16) == pytest.approx(1 - 24 / 64)


@pytest.mark.slow
def test_smoke_writes_the_json_with_ratios_and_the_skipped_levers(tmp_path, shared_data, one_thread):
    out = tmp_path / "fast_path.json"
    res = bench_fast_path.main(["--smoke", "--data-root", str(shared_data), "--json", str(out)])
    assert json.loads(out.read_text())["variants"].keys() == res["variants"].keys()
    today, pad8 = res["variants"]["today"], res["variants"]["pad8"]
    assert today["dense_vs_today_dense"] == pytest.approx(1.0) and today["ticket_over_dense"] > 0
    assert pad8["dense"]["shapes"] <= today["dense"]["shapes"]
    assert res["unpadding_bound"]["pad8"] >= res["unpadding_bound"]["pad1"] > 0
    assert "model_name" in res["machine"] and "avx2" in res["machine"]["flags"]
    for name in ("embeddings_freeze", "dropout0"):  # run where the fields exist, a note where they do not
        assert name in res["variants"] or any(n.startswith(name) for n in res["notes"])


def _runs(**seconds):
    return {
        arm: [{"total_seconds": s, "train_seconds": s, "metric": 0.9, "search_steps": 0}] for arm, s in seconds.items()
    }


def test_ratios_are_against_the_faster_trainer_arm():
    runs = _runs(trainer=100.0, trainer_compile=80.0, dense=72.0, rewind=60.0, **{"continue": 48.0})
    assert tta.reference_arm(runs) == "trainer_compile"
    s = tta.summarize(runs)
    assert s["continue"]["time_ratio"] == pytest.approx(0.6) and s["trainer"]["time_ratio"] == pytest.approx(1.25)
    out = {"tasks": {"sst2": {"summary": s, "runs": runs, "reference": "trainer_compile"}}}
    h = tta.headline(out)
    assert h["reference"] == "trainer_compile" and h["arm"] == "continue"
    assert h["time_ratio"] == pytest.approx(0.6) and h["dense_vs_trainer"] == pytest.approx(0.9)
    assert tta.reference_arm(_runs(trainer=50.0, dense=40.0)) == "trainer"  # a run without the compile arm


def test_set_overrides_are_checked_before_anything_runs():
    assert tta.parse_sets(["compile=true", "pad_to_multiple_of=16"]) == {"compile": True, "pad_to_multiple_of": 16}
    with pytest.raises(ValueError, match="no_such_field"):
        tta.parse_sets(["no_such_field=1"])
    with pytest.raises(ValueError, match="pad_to_multiple_of=0"):
        tta.parse_sets(["pad_to_multiple_of=0"])
    with pytest.raises(SystemExit):
        tta.parse_args(["--set", "compile"])


def test_a_set_override_wins_over_the_flag_it_shares_a_name_with():
    from types import SimpleNamespace

    args = SimpleNamespace(
        model="minilm-l6", data_root=None, train_samples=8, eval_samples=8, max_length=64, batch_size=32,
        precision="auto", lr=1e-4,
    )  # fmt: skip
    cfg = flow_config(args, "sst2", 0, **tta.parse_sets(["precision=bf16-master", "embeddings=freeze"]))
    assert (cfg.precision, cfg.embeddings, cfg.lr) == ("bf16-master", "freeze", 1e-4)


def test_levered_and_plain_arms_run_the_same_flow_with_their_settings_on_top_of_set(monkeypatch):
    seen = []

    def fake_flow(args, task, seed, epochs, every, mode, sets):
        seen.append((mode, sets))
        return {"metric": 0.9, "total_seconds": 1.0, "train_seconds": 1.0, "steps": 1, "search_steps": 0,
                "ticket_layout": None}  # fmt: skip

    monkeypatch.setattr(tta, "arm_flow", fake_flow)
    monkeypatch.setattr(tta, "loaders", lambda *a, **k: ([0] * 10, None))
    monkeypatch.setattr(tta, "as_tokenizer", lambda name: None)
    arms = "dense,continue_levers,continue_plain"
    args = tta.parse_args(["--tasks", "sst2", "--seeds", "1", "--arms", arms, "--set", "lr=0.001"])
    assert args.levers == {"precision": "bf16-master", "embeddings": "freeze", "dropout": 0}
    res = tta.run(args)
    levers = {"lr": 0.001, "precision": "bf16-master", "embeddings": "freeze", "dropout": 0}
    plain = {"lr": 0.001, "fast_path": False}  # the EarlyBERT trial before the fast path was its default
    assert seen == [(None, {"lr": 0.001}), ("continue", levers), ("continue", plain)]
    assert set(res["tasks"]["sst2"]["summary"]) == {"dense", "continue_levers", "continue_plain"}
    with pytest.raises(SystemExit):
        tta.parse_args(["--arms", "dense_levers", "--levers", "no_such_field=1"])
