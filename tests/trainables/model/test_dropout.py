"""dropout: one p for every dropout of the model, 0 allowed and then free (no mask drawn, SDPA's no-dropout
kernel), a searchable FlowConfig field; pruned = masked dense in the (deterministic) training forward."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import profile

from tickettune.trainables.config import FlowConfig
from tickettune.trainables.earlybert import slimming
from tickettune.trainables.earlybert.draw import make_ticket
from tickettune.trainables.model.build import ScratchConfig, load_model, scratch_model
from tickettune.trainables.model.dropout import dropout_ps, set_dropout
from tickettune.trainables.model.encoder import encoder_of
from tickettune.trainables.training.loop import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(dropout: float = 0.1) -> nn.Module:
    torch.manual_seed(0)
    model, _ = scratch_model(
        ScratchConfig(layers=2, heads=4, hidden=32, ffn=64, dropout=dropout), head="classification"
    )
    return model


def batch(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(4, 16, dtype=torch.long)
    mask[0, 10:] = 0  # padding: the attention mask is not trivial
    return {
        "input_ids": torch.randint(5, 500, (4, 16), generator=g),
        "attention_mask": mask,
        "labels": torch.randint(0, 2, (4,), generator=g),
    }


def op_names(model: nn.Module) -> set[str]:
    model.train()
    with profile() as prof:
        model(**batch()).loss.backward()
    return {e.key for e in prof.key_averages()}


def test_zero_draws_no_mask_and_takes_the_flash_kernel():
    model = tiny()
    ops = op_names(model)
    assert "aten::bernoulli_" in ops and "aten::_scaled_dot_product_attention_math" in ops  # p = 0.1: masks, math path
    set_dropout(model, 0.0)
    assert dropout_ps(model) == {0.0}
    ops = op_names(model)
    assert not any("bernoulli" in o or "native_dropout" in o for o in ops)
    assert "aten::_scaled_dot_product_attention_math" not in ops
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):  # only the fused kernel allowed: it must be enough
        model(**batch()).loss.backward()


def test_zero_makes_the_training_forward_deterministic_and_none_keeps_the_model():
    model = tiny()
    set_dropout(model, None)
    assert dropout_ps(model) == {0.1}
    model.train()
    assert not torch.equal(model(**batch()).logits, model(**batch()).logits)
    set_dropout(model, 0.0)
    assert torch.equal(model(**batch()).logits, model(**batch()).logits)


@pytest.mark.parametrize("family", ["modernbert", "distilbert"])
def test_every_family_gets_the_same_p(tmp_path, family):
    from tickettune.trainables.testing.random_models import write_random_model

    model, _ = load_model(str(write_random_model(family, tmp_path / family)), head="classification", num_labels=2)
    set_dropout(model, 0.2)
    assert dropout_ps(model) == {0.2}
    layer = encoder_of(model).blocks[0]
    assert isinstance(layer.part("o_drop") if layer.spec.o_drop else nn.Dropout(0.2), nn.Dropout)
    set_dropout(model, 0.0)
    assert dropout_ps(model) == {0.0}
    model.train()
    b = {k: v for k, v in batch().items() if k != "labels"}
    assert torch.equal(model(**b).logits, model(**b).logits)


def test_train_sets_it_and_the_ticket_equals_the_masked_model_in_training_mode():
    model = tiny()
    slimming.attach(model)
    train(model, [batch(i) for i in range(2)], TrainConfig(lr=1e-3, max_steps=2, progress=False, dropout=0.0))
    assert dropout_ps(model) == {0.0}
    heads = [torch.tensor([True, False, True, True]), torch.tensor([False, True, True, False])]
    ffn = [torch.arange(64) % 3 != 0, torch.arange(64) % 2 == 0]
    with torch.no_grad():
        for layer, hm, fm in zip(encoder_of(model).blocks, heads, ffn):
            layer.head_coef.mul_(hm)
            layer.ffn_coef.mul_(fm)
    ticket = make_ticket(None, model, heads, ffn, rewind=False)
    model.train(), ticket.train()
    assert torch.allclose(model(**batch(5)).logits, ticket(**batch(5)).logits, atol=1e-5)


def test_bad_values_are_named_and_a_space_can_range_over_it():
    for bad in (1.0, -0.1, "x", True):
        with pytest.raises(ValueError, match=f"dropout={bad!r}"):
            FlowConfig(dropout=bad)
        with pytest.raises(ValueError, match="dropout="):
            TrainConfig(dropout=bad)
    assert FlowConfig(dropout=0).dropout == 0
    from tickettune.spaces import load_spec
    from tickettune.spaces.schema import SpecError

    spec = load_spec(
        {
            "name": "levers",
            "storage": "/tmp/x",
            "fixed": {"embeddings": "sparse"},
            "space": {"dropout": {"low": 0.0, "high": 0.2}, "precision": {"choices": ["fp32", "bf16-master"]}},
        }
    )
    assert spec.space["dropout"].kind == "float" and spec.flow_config({"dropout": 0.0}).dropout == 0.0
    with pytest.raises(SpecError, match="embeddings='dense'"):
        load_spec(
            {
                "name": "levers",
                "storage": "/tmp/x",
                "space": {"embeddings": {"choices": ["train", "dense"]}, "dropout": {"low": 0.0, "high": 1.0}},
            }
        )
