"""The training loop: accumulation, penalties, stopping, divergence."""

import copy

import pytest
import torch

from tickettune.trainables.model.build import ScratchConfig, scratch_model
from tickettune.trainables.training.loop import Callback, TrainConfig, make_optimizer, train


def tiny_classifier(seed=0):
    torch.manual_seed(seed)
    model, _ = scratch_model(ScratchConfig(layers=2, heads=2, hidden=32, ffn=64, dropout=0.0), head="classification")
    return model


def batches(n, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(1000, 2000, (size, 12), generator=g)
        out.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": (ids[:, 0] % 2).long()})
    return out


def test_grad_accumulation_matches_one_big_batch():
    """2 micro-batches of 4 with accum=2 == 1 batch of 8 (same data, no dropout)."""
    small = batches(2, 4)
    big = [{k: torch.cat([small[0][k], small[1][k]]) for k in small[0]}]
    a, b = tiny_classifier(), tiny_classifier()
    cfg = dict(lr=1e-3, max_steps=1, warmup_ratio=0.0, progress=False, fused=False, precision="fp32")
    train(a, small, TrainConfig(grad_accum=2, **cfg))
    train(b, big, TrainConfig(grad_accum=1, **cfg))
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, atol=1e-6, rtol=1e-5, msg=n)


class L1(Callback):
    def extra_loss(self, model):
        return 1e3 * sum(p.abs().sum() for n, p in model.named_parameters() if "classifier.weight" in n)


def test_extra_loss_is_applied_once_per_step_even_with_accumulation():
    """The penalty's gradient does not scale with the number of micro-batches."""
    data = batches(4, 4)
    base = dict(lr=1e-3, max_steps=1, warmup_ratio=0.0, progress=False, fused=False, max_grad_norm=1e9)
    moved = []
    for accum in (1, 4):
        model = tiny_classifier()
        before = model.classifier.weight.detach().clone()
        train(model, data, TrainConfig(grad_accum=accum, **base), [L1()])
        moved.append((model.classifier.weight.detach() - before).abs().mean().item())
    # AdamW's first step moves every weight by ~lr when the (dominant) L1 gradient is applied once
    assert moved[0] == pytest.approx(moved[1], rel=0.05)


def test_loss_decreases_and_callbacks_can_stop():
    data = batches(8, 8)
    model = tiny_classifier()

    class StopAt(Callback):
        def __init__(self):
            self.seen = []

        def after_step(self, step, logs):
            self.seen.append(step)
            return step == 30

    cb = StopAt()
    result = train(model, data, TrainConfig(lr=3e-3, max_steps=100, progress=False), [cb])
    assert result.steps == 30 and result.stopped_early and cb.seen == list(range(1, 31))
    assert sum(result.losses[-5:]) < sum(result.losses[:5])


def test_divergence_raises_before_the_weights_are_touched():
    model = tiny_classifier()
    data = batches(1, 4)
    data[0]["labels"] = torch.tensor([0, 1, 0, 1])
    snapshot = copy.deepcopy(model.state_dict())

    class Nan(Callback):
        def extra_loss(self, model):
            return None

    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    snapshot = copy.deepcopy(model.state_dict())
    with pytest.raises(FloatingPointError, match="loss is nan at step 0"):
        train(model, data, TrainConfig(max_steps=3, progress=False), [Nan()])
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, snapshot[k], equal_nan=True)


def test_coefficients_get_their_own_lr_and_no_decay():
    model = tiny_classifier()
    layer = model.bert.encoder.layer[0]
    layer.head_coef = torch.nn.Parameter(torch.ones(2))
    opt = make_optimizer(model, TrainConfig(lr=1e-4, coef_lr=1e-2, fused=False))
    group = [g for g in opt.param_groups if any(p is layer.head_coef for p in g["params"])][0]
    assert group["lr"] == 1e-2 and group["weight_decay"] == 0.0


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"lr": 0}, "lr=0"),
        ({"warmup_ratio": 1.0}, "warmup_ratio=1.0"),
        ({"max_steps": 0}, "max_steps=0"),
        ({"coef_lr": -1.0}, "coef_lr=-1.0"),
    ],
)
def test_bad_train_config_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        TrainConfig(**kwargs)
