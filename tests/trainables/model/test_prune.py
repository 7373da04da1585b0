"""Physical pruning computes exactly what the masked dense model computes (eval mode, 1e-5)."""

import copy

import pytest
import torch

from tickettune.trainables.earlybert.draw import make_ticket, snapshot
from tickettune.trainables.earlybert.masks import MaskConfig, masks_from_model
from tickettune.trainables.earlybert.slimming import attach, has_coefficients
from tickettune.trainables.model.build import ScratchConfig, count_parameters, layout, load_model, scratch_model
from tickettune.trainables.model.encoder import encoder_of
from tickettune.trainables.model.prune import prune_model

ATOL = 1e-5


def build(kind, pre_ln, head="classification"):
    torch.manual_seed(0)
    if kind == "minilm":
        model, _ = load_model("minilm-l6", head=head, pre_ln=pre_ln)
    else:  # a small random BERT with 6 heads of 8 dims and an FFN of 96
        model, _ = scratch_model(ScratchConfig(layers=3, heads=6, hidden=48, ffn=96, pre_ln=pre_ln), head=head)
    return model.eval()


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 20000, (3, 16), generator=g)
    ids[:, 0] = 101
    mask = torch.ones_like(ids)
    mask[0, 11:] = 0
    mask[2, 5:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def random_coefficients(model, seed=1, low=-1.5, high=1.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for l in encoder_of(model).layer:
            l.head_coef.copy_(torch.empty(l.num_heads).uniform_(low, high, generator=g))
            l.ffn_coef.copy_(torch.empty(l.ffn_width).uniform_(low, high, generator=g))


def set_coefficients(model, head_values, ffn_values):
    with torch.no_grad():
        for l, h, f in zip(encoder_of(model).layer, head_values, ffn_values):
            l.head_coef.copy_(h)
            l.ffn_coef.copy_(f)


@torch.no_grad()
def logits(model, seed=0):
    return model(**batch(seed)).logits


CASES = [("minilm", False), ("minilm", True), ("scratch", False), ("scratch", True)]


@pytest.mark.parametrize("kind,pre_ln", CASES)
def test_pruned_equals_masked_dense(kind, pre_ln):
    dense = build(kind, pre_ln)
    attach(dense)
    random_coefficients(dense)  # masks from uneven coefficients: 4 of 12 heads per layer, 40% FFN global
    heads, ffn = masks_from_model(dense, MaskConfig())
    assert len({int(m.sum()) for m in ffn}) > 1 or kind == "scratch"  # uneven widths for MiniLM
    pruned = make_ticket(None, dense, heads, ffn, rewind=False)  # coefficients folded in, then pruned
    # the masked dense model: coefficient * mask (a pruned unit contributes nothing)
    set_coefficients(
        dense,
        [l.head_coef * m for l, m in zip(encoder_of(dense).layer, heads)],
        [l.ffn_coef * m for l, m in zip(encoder_of(dense).layer, ffn)],
    )
    pruned.eval()
    for seed in (0, 1):
        torch.testing.assert_close(logits(pruned, seed), logits(dense, seed), rtol=0, atol=ATOL)
    assert layout(pruned)["heads_per_layer"] == [int(m.sum()) for m in heads]
    assert layout(pruned)["ffn_per_layer"] == [int(m.sum()) for m in ffn]
    assert pruned.config.tickettune == layout(pruned)
    assert not has_coefficients(pruned) and has_coefficients(dense)  # the trained model is left as it was


@pytest.mark.parametrize("kind,pre_ln", CASES)
def test_prune_model_equals_zero_one_coefficients(kind, pre_ln):
    dense = build(kind, pre_ln)
    g = torch.Generator().manual_seed(5)
    heads = [torch.randperm(l.num_heads, generator=g) < max(1, l.num_heads * 2 // 3) for l in encoder_of(dense).layer]
    ffn = [torch.rand(l.ffn_width, generator=g) < 0.6 for l in encoder_of(dense).layer]
    pruned = prune_model(copy.deepcopy(dense), heads, ffn)
    attach(dense)
    set_coefficients(dense, [m.float() for m in heads], [m.float() for m in ffn])
    torch.testing.assert_close(logits(pruned), logits(dense), rtol=0, atol=ATOL)
    assert count_parameters(pruned) < count_parameters(dense)


@pytest.mark.parametrize("pre_ln", [False, True])
def test_mlm_pruned_equals_masked_dense_and_stays_tied(pre_ln):
    dense = build("scratch", pre_ln, head="mlm")
    attach(dense)
    random_coefficients(dense)
    heads, ffn = masks_from_model(dense, MaskConfig(head_ratio=0.5, ffn_ratio=0.4))
    pruned = make_ticket(None, dense, heads, ffn, rewind=False).eval()
    set_coefficients(
        dense,
        [l.head_coef * m for l, m in zip(encoder_of(dense).layer, heads)],
        [l.ffn_coef * m for l, m in zip(encoder_of(dense).layer, ffn)],
    )
    torch.testing.assert_close(logits(pruned), logits(dense), rtol=0, atol=ATOL)
    assert pruned.cls.predictions.decoder.weight is pruned.bert.embeddings.word_embeddings.weight


def test_rewind_prunes_the_pretrained_weights():
    model = build("scratch", pre_ln=False)
    reference = copy.deepcopy(model)
    pretrained = snapshot(model)
    attach(model)
    pretrained_with_coef = snapshot(model)  # a snapshot taken after attach is fine too: coefficients dropped
    assert pretrained_with_coef.keys() == pretrained.keys()
    # "training": every weight and coefficient moves
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    random_coefficients(model)
    heads, ffn = masks_from_model(model, MaskConfig())
    ticket = make_ticket(pretrained, model, heads, ffn, rewind=True).eval()
    attach(reference)
    set_coefficients(reference, [m.float() for m in heads], [m.float() for m in ffn])
    torch.testing.assert_close(logits(ticket), logits(reference), rtol=0, atol=ATOL)
    torch.testing.assert_close(
        ticket.bert.embeddings.word_embeddings.weight, pretrained["bert.embeddings.word_embeddings.weight"]
    )
    with pytest.raises(ValueError, match="pre-trained state"):
        make_ticket(None, model, heads, ffn, rewind=True)
    with pytest.raises(ValueError, match="does not match"):
        make_ticket({"nonsense": torch.zeros(1)}, model, heads, ffn, rewind=True)


def test_pruned_model_trains():
    model = build("scratch", pre_ln=True).train()
    attach(model)
    heads, ffn = masks_from_model(model, MaskConfig())
    ticket = make_ticket(snapshot(model), model, heads, ffn).train()
    opt = torch.optim.AdamW(ticket.parameters(), lr=1e-3)
    out = ticket(**batch(), labels=torch.tensor([0, 1, 1]))
    out.loss.backward()
    assert all(
        p.grad is not None and p.grad.shape == p.shape
        for n, p in ticket.named_parameters()
        if "pooler" not in n and "classifier" not in n and n.startswith("bert.encoder")
    )
    opt.step()


def test_prune_model_validation():
    model = build("scratch", pre_ln=False)
    layers = encoder_of(model).layer
    ok_h = [torch.ones(l.num_heads, dtype=torch.bool) for l in layers]
    ok_f = [torch.ones(l.ffn_width, dtype=torch.bool) for l in layers]
    with pytest.raises(ValueError, match="one head mask"):
        prune_model(copy.deepcopy(model), ok_h[:-1], ok_f)
    with pytest.raises(ValueError, match="layer 0"):
        prune_model(copy.deepcopy(model), [torch.ones(2, dtype=torch.bool)] + ok_h[1:], ok_f)
    with pytest.raises(ValueError, match="at least one"):
        prune_model(copy.deepcopy(model), [torch.zeros(6, dtype=torch.bool)] + ok_h[1:], ok_f)
