"""Every supported family (tiny random models saved to disk, loaded through `load_model(dir)`): the
TicketEncoder computes what HF computes; slimming, masks, early bird, pruning, PLD and tickets work."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from tickettune.trainables import pld as pld_mod
from tickettune.trainables.earlybert.draw import make_ticket
from tickettune.trainables.earlybert.earlybird import EarlyBirdCallback, EarlyBirdDetector
from tickettune.trainables.earlybert.masks import MaskConfig, masks_from_model
from tickettune.trainables.earlybert.slimming import SlimmingCallback, attach, coefficients
from tickettune.trainables.model.build import count_parameters, head_of, layout, load_model
from tickettune.trainables.model.encoder import encoder_of
from tickettune.trainables.model.families import FAMILIES, UnsupportedModel, family_of
from tickettune.trainables.testing.random_models import write_random_model
from tickettune.trainables.ticket.format import read_info, save_ticket, ticket_info
from tickettune.trainables.training.loop import TrainConfig, train

MODEL_TYPES = sorted(FAMILIES)  # bert, camembert, distilbert, electra, modernbert, roberta, xlm-roberta
ATOL = 1e-5

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("families")
    return {t: str(write_random_model(t, root / t)) for t in MODEL_TYPES}


def batch(tok) -> dict:
    texts = ["a gripping, funny film that goes on and on and on and on", "dull", "not bad at all, really"]
    return dict(tok(texts, padding=True, return_tensors="pt"))


def load(dirs, model_type, head="classification", num_labels=3, pre_ln=None):
    torch.manual_seed(0)
    model, tok = load_model(dirs[model_type], head=head, num_labels=num_labels, pre_ln=pre_ln)
    return model.eval(), tok


def set_random_coefficients(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for l in encoder_of(model).blocks:
            l.head_coef.copy_(torch.empty(l.num_heads).uniform_(-1.5, 1.5, generator=g))
            l.ffn_coef.copy_(torch.empty(l.ffn_width).uniform_(-1.5, 1.5, generator=g))


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_ticket_encoder_matches_hf(dirs, model_type):
    model, tok = load(dirs, model_type)
    assert family_of(model).backbone_attr in dict(model.named_children())
    ref = type(model).from_pretrained(dirs[model_type], num_labels=3, attn_implementation="eager").eval()
    ref.load_state_dict(model.state_dict())  # same parameter names: loads strictly
    b = batch(tok)
    assert b["attention_mask"].min() == 0  # padding is exercised
    assert ("token_type_ids" in b) == family_of(model).uses_token_types(model.config)
    with torch.no_grad():
        torch.testing.assert_close(model(**b).logits, ref(**b).logits, rtol=0, atol=ATOL)


def test_modernbert_sliding_window_is_applied(dirs):
    model, tok = load(dirs, "modernbert")
    types = [l.attention_type for l in encoder_of(model).blocks]
    assert types == ["full_attention", "sliding_attention"]
    b = batch(tok)
    assert b["input_ids"].shape[1] > 2 * model.config.sliding_window + 1
    with torch.no_grad():
        local = model(**b).logits
        encoder_of(model).config = copy.copy(model.config)
        encoder_of(model).config.local_attention = 10_000  # every layer global
        assert not torch.allclose(model(**b).logits, local, atol=1e-4)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_pruned_equals_masked_dense(dirs, model_type):
    dense, tok = load(dirs, model_type)
    attach(dense)
    set_random_coefficients(dense)
    heads, ffn = masks_from_model(dense, MaskConfig(head_ratio=0.5, ffn_ratio=0.4, min_ffn=4))
    pruned = make_ticket(None, dense, heads, ffn, rewind=False).eval()  # coefficients folded, then pruned
    hc, fc = coefficients(dense)
    with torch.no_grad():
        for c, m in zip(hc + fc, heads + ffn):
            c.mul_(m)  # the masked dense model: a pruned unit contributes nothing
    b = batch(tok)
    with torch.no_grad():
        torch.testing.assert_close(pruned(**b).logits, dense(**b).logits, rtol=0, atol=ATOL)
    assert layout(pruned)["heads_per_layer"] == [int(m.sum()) for m in heads]
    assert layout(pruned)["ffn_per_layer"] == [int(m.sum()) for m in ffn]
    assert count_parameters(pruned) < count_parameters(dense)


def loader(tok, n=4):
    b = batch(tok)
    b["labels"] = torch.tensor([0, 1, 2])
    return [b] * n


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_slimming_early_bird_and_pld_train(dirs, model_type):
    model, tok = load(dirs, model_type)
    model.train()
    attach(model)
    dropper = (
        pld_mod.attach(model, pld_mod.PLDConfig(theta_bar=0.3, gamma=10.0, seed=3))
        if encoder_of(model).pre_ln
        else None
    )
    if dropper is None:  # post-LN families: PLD warns but runs
        with pytest.warns(UserWarning, match="post-LN"):
            dropper = pld_mod.attach(model, pld_mod.PLDConfig(theta_bar=0.3, gamma=10.0, seed=3))
    before = [c.detach().clone() for c in coefficients(model)[0]]
    eb = EarlyBirdCallback(
        MaskConfig(head_ratio=0.5, ffn_ratio=0.4, min_ffn=4), EarlyBirdDetector(window=2, eps=0.5), interval=1
    )
    result = train(
        model,
        loader(tok),
        TrainConfig(max_steps=3, lr=1e-3, progress=False, precision="fp32", warmup_ratio=0.0),
        callbacks=[SlimmingCallback(1e-3, 1e-3), eb, pld_mod.PLDCallback(dropper)],
    )
    assert result.steps >= 2
    assert any(not torch.equal(a, b) for a, b in zip(before, coefficients(model)[0]))  # coefficients trained
    assert len(eb.history) >= 2 and eb.masks is not None
    assert dropper.layers_seen > 0 and dropper.realized_fraction() < 1.0  # some layer was skipped


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_heads(dirs, model_type):
    for head, num_labels in (("classification", 3), ("regression", 1), ("mlm", 2), ("qa", 2)):
        model, tok = load(dirs, model_type, head=head, num_labels=num_labels)
        assert head_of(model) == (head, 1 if head == "regression" else head_of(model)[1])
        b = batch(tok)
        n, t = b["input_ids"].shape
        if head == "mlm":
            labels = torch.full_like(b["input_ids"], -100)
            labels[:, 1] = b["input_ids"][:, 1]
            out = model(**b, labels=labels)
        elif head == "qa":
            out = model(**b, start_positions=torch.tensor([1, 1, 2]), end_positions=torch.tensor([3, 1, 4]))
            assert out.start_logits.shape == (n, t)
        else:
            out = model(**b, labels=torch.tensor([0.5, 1.0, 0.0]) if head == "regression" else torch.tensor([0, 1, 2]))
            assert out.logits.shape == (n, num_labels)
        assert torch.isfinite(out.loss), (model_type, head)


def test_modernbert_is_pre_ln_only(dirs):
    with pytest.raises(ValueError, match="ModernBERT blocks are pre-LN"):
        load(dirs, "modernbert", pre_ln=False)


def test_unsupported_family_lists_the_supported(tmp_path):
    from transformers import GPT2Config, GPT2Model

    GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50)).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedModel, match="'gpt2' is not supported.*RoBERTa.*ModernBERT"):
        load_model(str(tmp_path))


CHILD = textwrap.dedent("""
    import json, sys, torch
    torch.set_num_threads(1)
    from tickettune.trainables.ticket.format import load_ticket
    from tickettune.trainables.model.build import layout
    jobs, out = json.loads(sys.argv[1]), sys.argv[2]
    results = {}
    for path in jobs:
        model, tok, info = load_ticket(path)
        b = tok(["a gripping, funny film that goes on and on and on and on", "dull", "not bad at all, really"],
                padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**b).logits.tolist()
        results[path] = {"logits": logits, "layout": layout(model), "type": type(model).__name__}
    json.dump(results, open(out, "w"))
""")


def test_ticket_reloads_in_a_fresh_process(dirs, tmp_path):
    saved = {}
    for model_type in MODEL_TYPES:  # RoBERTa turned pre-LN (a final norm of ours); ModernBERT with its MLM head
        dense, tok = load(
            dirs,
            model_type,
            head="mlm" if model_type == "modernbert" else "classification",
            pre_ln=True if model_type == "roberta" else None,
        )
        attach(dense)
        set_random_coefficients(dense)
        heads, ffn = masks_from_model(dense, MaskConfig(head_ratio=0.5, ffn_ratio=0.4, min_ffn=4))
        ticket = make_ticket(None, dense, heads, ffn, rewind=False).eval()
        with torch.no_grad():
            logits = ticket(**batch(tok)).logits
        path = str(save_ticket(ticket, tok, tmp_path / model_type, ticket_info(heads, ffn)))
        saved[path] = (logits, layout(ticket), type(ticket).__name__)
        # every family's ticket carries plain-transformers model code (format 2)
        assert (tmp_path / model_type / "modeling_tickettune.py").is_file() and read_info(path)["version"] == 2
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(list(saved)), str(tmp_path / "res.json")],
        check=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    results = json.loads((tmp_path / "res.json").read_text())
    for path, (logits, lay, name) in saved.items():
        got = results[path]
        assert got["layout"] == lay and got["type"] == name
        assert lay["pre_ln"] == (path.endswith(("roberta", "modernbert")) and not path.endswith("xlm-roberta"))
        torch.testing.assert_close(torch.tensor(got["logits"]), logits, rtol=0, atol=ATOL)


def test_search_config_reads_every_family_layout_and_refuses_others(dirs, tmp_path):
    from transformers import GPT2Config, GPT2Model

    from tickettune.spaces.spec import SpecError, load_spec

    def spec(model, **fixed):
        return {
            "name": "t",
            "fixed": {"model": model, "task": "sst2", **fixed},
            "space": {"head_ratio": {"low": 0.2, "high": 0.5}},
        }

    for model_type in ("distilbert", "modernbert", "roberta"):
        load_spec(spec(dirs[model_type], min_ffn=8))  # layouts read (DistilBERT names its widths differently)
    with pytest.raises(SpecError, match=r"min_ffn=65 .*\(64 FFN neurons\)"):  # read from n_layers/hidden_dim
        load_spec(spec(dirs["distilbert"], min_ffn=65))
    GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50)).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(SpecError, match="'gpt2' is not supported; supported families: BERT"):
        load_spec(spec(str(tmp_path / "gpt2")))


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_mlm_decodes_masked_positions_only_with_the_stock_loss(dirs, model_type):
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES as NAMES

    model, tok = load(dirs, model_type, head="mlm")
    stock_cls = getattr(transformers, NAMES[model_type])
    assert isinstance(model, stock_cls)
    stock = stock_cls.from_pretrained(dirs[model_type], attn_implementation="eager").eval()
    stock.load_state_dict(model.state_dict(), strict=False)  # tied decoder: saved once
    b = batch(tok)
    labels = torch.full_like(b["input_ids"], -100)
    labels[:, 1], labels[0, 5] = b["input_ids"][:, 1], b["input_ids"][0, 5]
    with torch.no_grad():
        ours, theirs = model(**b, labels=labels), stock(**b, labels=labels)
        torch.testing.assert_close(ours.loss, theirs.loss, rtol=0, atol=ATOL)
        assert ours.logits.shape == (4, model.config.vocab_size)  # only the 4 masked positions
        # at real tokens: a padding query in a sliding layer sees no key at all, where HF's eager and sdpa
        # paths disagree with each other (ours is HF's sdpa result there)
        real = b["attention_mask"].bool()
        torch.testing.assert_close(model(**b).logits[real], stock(**b).logits[real], rtol=0, atol=ATOL)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_bf16_autocast_step(dirs, model_type):
    model, tok = load(dirs, model_type)
    attach(model)
    result = train(
        model.train(),
        loader(tok, 2),
        TrainConfig(max_steps=1, progress=False, precision="bf16", warmup_ratio=0.0, fused=False),
    )
    assert result.steps == 1 and all(torch.isfinite(c).all() for c in coefficients(model)[0])
    assert all(c.dtype == torch.float32 for c in coefficients(model)[1])  # coefficients stay fp32


@pytest.mark.parametrize(
    "model_type,head,auto",
    [
        ("roberta", "mlm", "AutoModelForMaskedLM"),
        ("xlm-roberta", "classification", "AutoModelForSequenceClassification"),
        ("camembert", "qa", "AutoModelForQuestionAnswering"),
        ("electra", "classification", "AutoModelForSequenceClassification"),
    ],
)
def test_plain_transformers_loads_bert_block_tickets(dirs, tmp_path, model_type, head, auto):
    import transformers

    dense, tok = load(dirs, model_type, head=head, pre_ln=head == "mlm")  # the MLM one pre-LN (a final norm)
    attach(dense)
    set_random_coefficients(dense)
    heads, ffn = masks_from_model(dense, MaskConfig(head_ratio=0.5, ffn_ratio=0.4, min_ffn=4))
    ticket = make_ticket(None, dense, heads, ffn, rewind=False).eval()
    with torch.no_grad():
        for p in ticket.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)  # biases and norms off their zero/one init
    path = save_ticket(ticket, tok, tmp_path / "t", ticket_info(heads, ffn))
    plain = getattr(transformers, auto).from_pretrained(path, trust_remote_code=True).eval()
    assert type(plain).__name__.startswith("Tickettune")
    b = batch(tok)
    key = "start_logits" if head == "qa" else "logits"
    with torch.no_grad():
        torch.testing.assert_close(getattr(plain(**b), key), getattr(ticket(**b), key), rtol=0, atol=ATOL)
