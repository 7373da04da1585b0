"""scripts/bench/inference.py --smoke: the whole benchmark at tiny counts on a tiny random BERT (eager and ONNX
Runtime; torch.compile only in the full run): its JSON headline, its prediction checks, and the inference-speed
section it writes into the ticket's model card."""

import importlib.util
import json

import pytest

from tickettune.trainables.training.precision import cpu_has_fast_bf16


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="needs the optional extra 'onnx'")
def test_smoke_run(tmp_path, shared_data):
    from bench import inference as bench

    res = bench.main(
        ["--smoke", "--threads", "1", "--json", str(tmp_path / "speed.json"), "--save-ticket", str(tmp_path / "ticket")]
    )
    saved = json.loads((tmp_path / "speed.json").read_text())
    h = saved["headline"]
    assert set(h) >= {"flop_ratio", "torch_fp32_throughput_ratio", "ort_throughput_ratio", "batch1_latency_ratio"}
    assert 0.3 < h["flop_ratio"] < 1 and all(
        h[k] > 0 for k in ("torch_fp32_throughput_ratio", "ort_throughput_ratio", "batch1_latency_ratio")
    )
    assert h["target_throughput_ratio"] == pytest.approx(1 / (1.10 * h["flop_ratio"]))
    pair = res["pairs"]["paper"]
    eager_bf16 = {"eager_bf16"} if cpu_has_fast_bf16() else set()  # bf16 is timed only where the CPU runs it natively
    assert set(pair["runs"]) == {"eager_fp32", "ort_fp32"} | eager_bf16
    assert set(pair["runs"]["ort_fp32"]) == {"sst2", "fixed128"}
    r = pair["runs"]["eager_fp32"]["fixed128"]
    assert r["throughput_ratio"] == pytest.approx(r["ticket"]["throughput"] / r["dense"]["throughput"])
    assert pair["checks"]["predict_equals_pruned_model"] and pair["checks"]["ort_equals_pytorch"]
    assert saved["machine"]["cpu"]["model_name"] and "avx2" in saved["machine"]["cpu"]["flags"]
    card = (tmp_path / "ticket" / "README.md").read_text()
    info = json.loads((tmp_path / "ticket" / "ticket.json").read_text())
    assert "## Inference speed" in card and "ONNX Runtime, fp32" in card and "not a measurement" in card
    assert info["inference_speed"]["flop_ratio"] == pytest.approx(h["flop_ratio"])
