"""Slimming coefficients: attach, penalty, folding, parameter groups, the callback."""

import pytest
import torch

from tickettune.trainables.earlybert.slimming import (
    SlimmingCallback,
    attach,
    coefficient_params,
    coefficients,
    detach_coefficients,
    has_coefficients,
    l1_penalty,
)
from tickettune.trainables.model.build import ScratchConfig, scratch_model
from tickettune.trainables.model.encoder import encoder_of


def tiny(pre_ln=True, head="classification"):
    torch.manual_seed(0)
    model, _ = scratch_model(ScratchConfig(layers=2, heads=4, hidden=32, ffn=48, pre_ln=pre_ln), head=head)
    return model.eval()


def batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 2000, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def randomise(model, low=-1.5, high=1.5):
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for l in encoder_of(model).layer:
            l.head_coef.copy_(torch.empty(l.num_heads).uniform_(low, high, generator=g))
            l.ffn_coef.copy_(torch.empty(l.ffn_width).uniform_(low, high, generator=g))


def test_attach_shapes_init_and_identity():
    model = tiny()
    before = model(**batch()).logits
    attach(model)
    heads, ffn = coefficients(model)
    assert [c.shape[0] for c in heads] == [4, 4] and [c.shape[0] for c in ffn] == [48, 48]
    assert all(torch.all(c == 1.0) and c.requires_grad for c in heads + ffn)
    assert len(coefficient_params(model)) == 4
    names = [n for n, _ in model.named_parameters() if n.endswith(("head_coef", "ffn_coef"))]
    assert names == [
        "bert.encoder.layer.0.head_coef",
        "bert.encoder.layer.0.ffn_coef",
        "bert.encoder.layer.1.head_coef",
        "bert.encoder.layer.1.ffn_coef",
    ]
    torch.testing.assert_close(model(**batch()).logits, before, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="already"):
        attach(model)


def test_attach_init_value():
    model = tiny()
    attach(model, init=0.5)
    assert all(torch.all(c == 0.5) for c in sum(coefficients(model), []))
    with pytest.raises(ValueError, match="finite"):
        attach(tiny(), init=float("nan"))


def test_l1_penalty_value_and_gradient():
    model = tiny()
    attach(model)
    randomise(model)
    heads, ffn = coefficients(model)
    expected = 2e-3 * sum(c.abs().sum() for c in heads) + 3e-4 * sum(c.abs().sum() for c in ffn)
    pen = l1_penalty(model, 2e-3, 3e-4)
    torch.testing.assert_close(pen, expected)
    pen.backward()
    for c in heads:
        torch.testing.assert_close(c.grad, 2e-3 * torch.sign(c.detach()))
    for c in ffn:
        torch.testing.assert_close(c.grad, 3e-4 * torch.sign(c.detach()))
    assert l1_penalty(model, 0.0, 0.0).item() == 0.0


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"lambda_head": -1e-4, "lambda_ffn": 1e-4}, "lambda_head"),
        ({"lambda_head": 1e-4, "lambda_ffn": -1.0}, "lambda_ffn"),
        ({"lambda_head": float("nan"), "lambda_ffn": 0.0}, "lambda_head"),
    ],
)
def test_negative_lambda_rejected(kwargs, name):
    model = tiny()
    attach(model)
    with pytest.raises(ValueError, match=name):
        l1_penalty(model, **kwargs)
    with pytest.raises(ValueError, match=name):
        SlimmingCallback(**kwargs)


def test_penalty_needs_coefficients():
    with pytest.raises(ValueError, match="attach"):
        l1_penalty(tiny(), 1e-4, 1e-4)


def test_callback_extra_loss_is_the_penalty():
    model = tiny()
    attach(model)
    randomise(model)
    cb = SlimmingCallback(lambda_head=1e-4, lambda_ffn=2e-4)
    torch.testing.assert_close(cb.extra_loss(model), l1_penalty(model, 1e-4, 2e-4))


@pytest.mark.parametrize("pre_ln", [True, False])
@pytest.mark.parametrize("head", ["classification", "mlm"])
def test_fold_keeps_the_function(pre_ln, head):
    model = tiny(pre_ln, head)
    attach(model)
    randomise(model)
    with torch.no_grad():
        before = model(**batch()).logits
    heads, ffn = detach_coefficients(model, fold=True)
    assert not has_coefficients(model) and len(heads) == 2 and heads[0].shape == (4,)
    assert not any(n.endswith(("head_coef", "ffn_coef")) for n in model.state_dict())
    assert coefficient_params(model) == []
    with torch.no_grad():
        torch.testing.assert_close(model(**batch()).logits, before, rtol=0, atol=1e-5)


def test_detach_without_fold_is_coefficients_at_one():
    model = tiny()
    with torch.no_grad():
        reference = model(**batch()).logits
    attach(model)
    randomise(model)
    detach_coefficients(model, fold=False)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch()).logits, reference, rtol=0, atol=1e-6)
    attach(model)  # attach again after a detach: fine
    assert has_coefficients(model)


def test_optimizer_group_and_l1_shrinks_coefficients():
    model = tiny()
    attach(model)
    randomise(model, 0.2, 1.0)
    coef = coefficient_params(model)
    ids = {id(p) for p in coef}
    rest = [p for p in model.parameters() if id(p) not in ids]
    assert len(rest) + len(coef) == len(list(model.parameters()))
    opt = torch.optim.AdamW([{"params": rest, "lr": 0.0}, {"params": coef, "lr": 1e-2, "weight_decay": 0.0}])
    before = sum(c.detach().abs().sum() for c in coef)
    for _ in range(5):
        opt.zero_grad()
        l1_penalty(model, 1.0, 1.0).backward()
        opt.step()
    assert sum(c.detach().abs().sum() for c in coef) < before


def test_training_step_reaches_coefficients():
    model = tiny().train()
    attach(model)
    out = model(**batch(), labels=torch.tensor([0, 1, 1]))
    (out.loss + SlimmingCallback().extra_loss(model)).backward()
    assert all(c.grad is not None and torch.isfinite(c.grad).all() for c in coefficient_params(model))
