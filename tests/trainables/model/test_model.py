"""Model building: the TicketEncoder must compute exactly what HF's BERT computes."""

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from tickettune.trainables.model.build import ScratchConfig, layout, load_model, model_path, scratch_model
from tickettune.trainables.model.encoder import TicketEncoder, encoder_of
from tickettune.trainables.model.mlm_head import SparseBertForMaskedLM


@pytest.fixture(scope="module")
def minilm():
    model, tok = load_model("minilm-l6")
    return model.eval(), tok


def test_minilm_alias_is_the_packaged_checkpoint(minilm):
    model, tok = minilm
    assert isinstance(model.bert.encoder, TicketEncoder)
    assert layout(model) == {"pre_ln": False, "heads_per_layer": [12] * 6, "ffn_per_layer": [1536] * 6}
    assert tok("hello world")["input_ids"][0] == tok.cls_token_id


def test_ticket_encoder_matches_hf_bert(minilm):
    model, tok = minilm
    ref = BertForSequenceClassification.from_pretrained(
        model_path("minilm-l6"), num_labels=2, attn_implementation="eager"
    ).eval()
    ref.load_state_dict(model.state_dict())  # same parameter names: loads strictly
    batch = tok(["a gripping, funny film", "dull"], padding=True, return_tensors="pt")
    with torch.no_grad():
        ours, theirs = model(**batch).logits, ref(**batch).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_pre_ln_scratch_model_is_pre_ln_with_final_norm():
    model, tok = scratch_model(ScratchConfig(layers=2, heads=2, hidden=32, ffn=64), head="mlm")
    enc = encoder_of(model)
    assert isinstance(model, SparseBertForMaskedLM)
    assert enc.pre_ln and enc.final_layer_norm is not None
    assert all(l.pre_ln for l in enc.layer)
    batch = tok(["the cat sat on the mat"], return_tensors="pt")
    labels = torch.full_like(batch["input_ids"], -100)
    labels[0, 2] = batch["input_ids"][0, 2]
    out = model(**batch, labels=labels)
    assert out.logits.shape == (1, tok.vocab_size)  # only the one masked position is projected
    assert torch.isfinite(out.loss)


def test_pre_ln_and_post_ln_differ_on_same_weights():
    torch.manual_seed(0)
    post, tok = scratch_model(ScratchConfig(layers=2, heads=2, hidden=32, ffn=64, pre_ln=False), head="classification")
    pre, _ = scratch_model(ScratchConfig(layers=2, heads=2, hidden=32, ffn=64, pre_ln=True), head="classification")
    state = {k: v for k, v in post.state_dict().items()}
    missing, unexpected = pre.load_state_dict(state, strict=False)
    assert missing == ["bert.encoder.final_layer_norm.weight", "bert.encoder.final_layer_norm.bias"]
    batch = tok(["some text"], return_tensors="pt")
    with torch.no_grad():
        assert not torch.allclose(pre.eval()(**batch).logits, post.eval()(**batch).logits)


def test_regression_head():
    model, _ = load_model("minilm-l6", head="regression")
    assert model.config.num_labels == 1 and model.config.problem_type == "regression"


@pytest.mark.parametrize(
    "bad, err",
    [
        ("/no/such/model/dir", FileNotFoundError),
        ("./missing", FileNotFoundError),
    ],
)
def test_bad_model_path_is_named(bad, err):
    with pytest.raises(err, match="missing|no/such"):
        load_model(bad)


def test_dir_without_config_is_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(str(tmp_path))


def test_bad_head_and_scratch_config():
    with pytest.raises(ValueError, match="head 'span'"):
        load_model("minilm-l6", head="span")
    with pytest.raises(ValueError, match="hidden=30"):
        ScratchConfig(hidden=30, heads=4)


def test_non_bert_config_rejected(tmp_path):
    BertConfig().save_pretrained(tmp_path)
    cfg = tmp_path / "config.json"
    cfg.write_text(cfg.read_text().replace('"model_type": "bert"', '"model_type": "gpt2"'))
    with pytest.raises(ValueError):
        load_model(str(tmp_path))
