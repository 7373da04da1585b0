"""The fast path's defaults (trainables/fast_path.py): an EarlyBERT trial fine-tuning a pre-trained encoder gets
the measured levers, pre-training keeps the plain ones, and a value the config sets always wins."""

import json

import pytest
import torch

from tickettune.trainables import fast_path
from tickettune.trainables.config import FlowConfig
from tickettune.trainables.flow import run_flow
from tickettune.trainables.model.build import ScratchConfig, load_model, scratch_model
from tickettune.trainables.reporter import LocalReporter

TINY = {"layers": 2, "heads": 4, "hidden": 32, "ffn": 64, "pre_ln": True}
Levers = fast_path.Levers

pytestmark = pytest.mark.usefixtures("one_thread")


def _auto_is(monkeypatch, name: str) -> None:
    """What `auto` resolves to on this device: bf16 on a CPU with AMX / AVX512-BF16, fp32 on one without."""
    monkeypatch.setattr(fast_path, "resolve_precision", lambda precision, device: name)


def test_fine_tuning_gets_the_levers_and_bf16_masters_only_where_bf16_is_fast(monkeypatch):
    _auto_is(monkeypatch, "bf16")
    assert fast_path.resolve(None, None, None, plain=False, device="cpu") == Levers("bf16-master", "freeze", 0.0)
    assert fast_path.resolve(None, None, None, False, "cuda").precision == "auto"  # a GPU keeps autocast (unmeasured)
    _auto_is(monkeypatch, "fp32")
    assert fast_path.resolve(None, None, None, False, "cpu") == Levers("auto", "freeze", 0.0)


def test_pretraining_keeps_the_plain_defaults_and_set_values_win(monkeypatch, tiny_scratch):
    _auto_is(monkeypatch, "bf16")
    assert fast_path.resolve(None, None, None, True, "cpu") == Levers("auto", "train", None)
    assert fast_path.resolve("fp32", "sparse", 0.1, False, "cpu") == Levers("fp32", "sparse", 0.1)
    assert fast_path.resolve("bf16", "train", 0.0, True, "cpu") == Levers("bf16", "train", 0.0)
    assert FlowConfig(scratch=tiny_scratch).pretraining and FlowConfig(task="wikitext").pretraining
    assert not FlowConfig().pretraining
    plain = FlowConfig(fast_path=False).levers("cpu")
    assert (plain["precision"], plain["embeddings"], plain["dropout"]) == ("auto", "train", None)
    set_ = FlowConfig(precision="fp32", embeddings="train", dropout=0.1).levers("cpu")
    assert (set_["precision"], set_["embeddings"], set_["dropout"]) == ("fp32", "train", 0.1)


def test_bad_lever_values_are_still_refused_by_name():
    with pytest.raises(ValueError, match="precision='bf17'"):
        FlowConfig(precision="bf17")
    with pytest.raises(ValueError, match="embeddings='frozen'"):
        FlowConfig(embeddings="frozen")


def test_a_default_trial_on_a_pretrained_model_trains_with_the_fast_path(tmp_path, tiny_scratch):
    """A saved (pre-trained) model through the real path: the ticket keeps the word embedding it started with,
    says which levers it trained with, and its dropout is gone."""
    model, tok = scratch_model(ScratchConfig(**tiny_scratch), head="classification")
    model.save_pretrained(tmp_path / "pre")
    tok.save_pretrained(tmp_path / "pre")
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    word = next(n for n, p in model.named_parameters() if p is model.get_input_embeddings().weight)
    cfg = FlowConfig(
        model=str(tmp_path / "pre"),
        max_train_samples=128,
        max_eval_samples=64,
        max_length=32,
        batch_size=16,
        lr=1e-3,
        coef_lr=5e-2,
        lambda_head=1e-2,
        lambda_ffn=1e-2,
        head_ratio=0.25,
        ffn_ratio=0.5,
        min_ffn=4,
        mask_interval=2,
        window=3,
        search_max_steps=8,
        detect=False,
        ticket_steps=4,
    )
    run_flow(cfg, LocalReporter(verbose=False), ticket_dir=str(tmp_path / "ticket"))
    info = json.loads((tmp_path / "ticket" / "ticket.json").read_text())
    expected = fast_path.resolve(None, None, None, False, fast_path.fast_device())
    assert info["levers"] == {"precision": expected.precision, "embeddings": "freeze", "dropout": 0.0}
    ticket, _ = load_model(str(tmp_path / "ticket"))
    after = dict(ticket.named_parameters())
    assert torch.equal(after[word], start[word])  # frozen: not one row moved
    norms = [n for n in start if "norm" in n.lower() and n != word and n in after]
    assert norms and any(not torch.equal(after[n], start[n]) for n in norms)  # while the rest trained
