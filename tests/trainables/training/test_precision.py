"""Mixed precision: what `auto` picks, what stays fp32 under bf16 autocast, and EarlyBERT under bf16."""

import pytest
import torch
from torch.nn.attention import SDPBackend

from tickettune.trainables.config import FlowConfig
from tickettune.trainables.earlybert import slimming
from tickettune.trainables.flow import run_flow
from tickettune.trainables.model.build import ScratchConfig, scratch_model
from tickettune.trainables.reporter import LocalReporter
from tickettune.trainables.training.loop import TrainConfig, predict, train
from tickettune.trainables.training.precision import Precision, cpu_has_fast_bf16, resolve_precision

pytestmark = pytest.mark.usefixtures("one_thread")


def test_auto_is_bf16_where_the_cpu_has_bf16_matmuls_and_fp16_needs_cuda():
    assert resolve_precision("auto", "cpu") == ("bf16" if cpu_has_fast_bf16() else "fp32")
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="precision='fp16' needs a CUDA device"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="precision='half'"):
        resolve_precision("half")
    with pytest.raises(ValueError, match="precision='fp8'"):
        TrainConfig(precision="fp8")
    assert Precision.of("bf16").scaler() is None and Precision.of("fp32").dtype == torch.float32


def batches(n: int, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "input_ids": torch.randint(5, 500, (8, 16), generator=g),
            "attention_mask": torch.ones(8, 16, dtype=torch.long),
            "labels": torch.randint(0, 2, (8,), generator=g),
        }
        for _ in range(n)
    ]


def test_bf16_training_keeps_weights_optimizer_state_and_coefficients_fp32():
    torch.manual_seed(0)
    model, _ = scratch_model(ScratchConfig(layers=2, heads=4, hidden=32, ffn=64), head="classification")
    slimming.attach(model)
    res = train(
        model,
        batches(4),
        TrainConfig(lr=1e-3, max_steps=4, progress=False, precision="bf16"),
        [slimming.SlimmingCallback(1e-2, 1e-2)],
    )
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(v.dtype == torch.float32 for st in res.optimizer.state.values() for k, v in st.items() if k != "step")
    heads, ffn = slimming.coefficients(model)
    assert heads[0].dtype == torch.float32 and not torch.equal(heads[0], torch.ones_like(heads[0]))  # trained
    assert slimming.l1_penalty(model, 1e-2, 1e-2).dtype == torch.float32
    logits, _ = predict(model, batches(1, seed=1), "bf16")
    assert logits.dtype.name == "float32"


def test_bf16_matches_fp32_closely_on_a_forward():
    torch.manual_seed(0)
    model, _ = scratch_model(ScratchConfig(layers=2, heads=4, hidden=32, ffn=64, dropout=0.0), head="classification")
    b = batches(1)
    fp32, _ = predict(model, b, "fp32")
    bf16, _ = predict(model, b, "bf16")
    assert abs(fp32 - bf16).max() < 0.05  # bf16 keeps ~3 significant digits


def test_bf16_training_on_cpu_takes_sdpas_math_path_and_inference_keeps_its_choice():
    q = torch.randn(2, 2, 8, 16, dtype=torch.bfloat16)

    def choice() -> int:
        return torch._fused_sdp_choice(q, q, q)

    free = choice()
    assert free != SDPBackend.MATH.value  # without dropout, torch picks its CPU flash kernel (slow backward in bf16)
    for name in ("bf16", "bf16-master"):
        amp = Precision.of(name, "cpu")
        with amp.train_autocast():
            assert choice() == SDPBackend.MATH.value, name
        assert choice() == free  # left as it was
        with amp.autocast():  # forward only: flash is the faster kernel
            assert choice() == free, name
            assert torch.is_autocast_enabled("cpu")
    for context in (Precision.of("fp32").autocast, Precision.of("fp32").train_autocast):
        with context():
            assert choice() == free
            assert not torch.is_autocast_enabled("cpu")


def test_early_bird_is_found_under_bf16_as_under_fp32(tiny_sst2):
    base = {**tiny_sst2, "max_eval_samples": 64, "eps": 0.1, "search_max_steps": 60, "ticket_steps": 4}
    found = {}
    for p in ("fp32", "bf16"):
        reporter = LocalReporter(verbose=False)
        result = run_flow(FlowConfig(**base, precision=p), reporter)
        assert result.converged, p
        found[p] = result.early_bird_step
    assert abs(found["bf16"] - found["fp32"]) <= 10, found  # the detector sees the same dynamics


def test_fp16_on_cpu_is_refused_before_any_compute():
    with pytest.raises(ValueError, match="fp16"):
        run_flow(FlowConfig(precision="fp16", model="./does-not-matter-never-loaded"))
