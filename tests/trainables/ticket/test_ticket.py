"""Ticket directories: round trip in a fresh process, load_model, tied weights, atomic writes."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tickettune.trainables.earlybert import draw
from tickettune.trainables.earlybert.masks import MaskConfig, masks_from_model
from tickettune.trainables.earlybert.slimming import attach
from tickettune.trainables.model.build import ScratchConfig, layout, load_model, scratch_model
from tickettune.trainables.ticket import format as T

IDS = [[101, 2023, 3185, 2001, 2307, 999, 102, 0, 0], [101, 1037, 6659, 2143, 1010, 2145, 2919, 1012, 102]]


def inputs():
    ids = torch.tensor(IDS)
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def make(head="classification", num_labels=2, pre_ln=True, rewind=True):
    """A small pruned ticket with uneven widths and its info, as the flow would build it."""
    torch.manual_seed(0)
    model, tok = scratch_model(
        ScratchConfig(layers=2, heads=4, hidden=32, ffn=64, pre_ln=pre_ln), head=head, num_labels=num_labels
    )
    pretrained = draw.snapshot(model)
    attach(model)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    cfg = MaskConfig(head_ratio=0.5, ffn_ratio=0.4)
    heads, ffn = masks_from_model(model, cfg)
    ticket = draw.make_ticket(pretrained, model, heads, ffn, rewind=rewind).eval()
    info = T.ticket_info(
        heads,
        ffn,
        mask_config=cfg,
        lambda_head=1e-4,
        lambda_ffn=2e-4,
        eps=0.1,
        window=5,
        mask_interval=10,
        found_at_step=120,
        rewind=rewind,
        metrics={"accuracy": 0.5},
        task="sst2",
    )
    return ticket, tok, info, (heads, ffn)


@torch.no_grad()
def logits(model):
    return model(**inputs()).logits


def listing(path: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def leftovers(parent: Path, name: str) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]


CHILD = textwrap.dedent("""
    import json, sys, torch
    from tickettune.trainables.ticket.format import load_ticket
    from tickettune.trainables.model.build import load_model, layout
    jobs, out = json.loads(sys.argv[1]), sys.argv[2]
    ids = torch.tensor(json.loads(sys.argv[3]))
    batch = {"input_ids": ids, "attention_mask": (ids != 0).long()}
    results = {}
    for path, head in jobs:
        model, tok, info = load_ticket(path)
        assert not model.training
        again, _ = load_model(path, head=head, num_labels=info["num_labels"])
        res = {"info": info, "layout": layout(model), "tokenized": tok("a great movie")["input_ids"]}
        with torch.no_grad():
            res["logits"] = model(**batch).logits.tolist()
            res["logits_load_model"] = again.eval()(**batch).logits.tolist()
        if head == "mlm":
            res["tied"] = model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
            res["bias_tied"] = model.cls.predictions.decoder.bias is model.cls.predictions.bias
        results[path] = res
    json.dump(results, open(out, "w"))
""")

HEADS = [("classification", 3, True), ("regression", 1, False), ("mlm", 2, True)]


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    """Three tickets saved here, loaded by one fresh Python process (no state shared with this one)."""
    tmp = tmp_path_factory.mktemp("round_trip")
    saved = {}
    for head, num_labels, pre_ln in HEADS:
        ticket, tok, info, masks = make(head, num_labels, pre_ln)
        out = T.save_ticket(ticket, tok, tmp / head, info)
        saved[head] = (str(out), ticket, tok, masks)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    jobs = [[saved[h][0], h] for h, _, _ in HEADS]
    subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(jobs), str(tmp / "res.json"), json.dumps(IDS)],
        check=True,
        env=env,
        cwd=tmp,
        timeout=600,
    )
    results = json.loads((tmp / "res.json").read_text())
    return {h: (results[path], ticket, tok, masks) for h, (path, ticket, tok, masks) in saved.items()}


@pytest.mark.parametrize("head,num_labels,pre_ln", HEADS)
def test_round_trip_in_a_fresh_process(round_trip, head, num_labels, pre_ln):
    res, ticket, tok, (heads, ffn) = round_trip[head]
    expected = logits(ticket)
    torch.testing.assert_close(torch.tensor(res["logits"]), expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.tensor(res["logits_load_model"]), expected, rtol=0, atol=1e-5)
    assert res["layout"] == layout(ticket) and res["layout"]["pre_ln"] == pre_ln
    assert res["tokenized"] == tok("a great movie")["input_ids"]
    saved = res["info"]
    assert saved["head"] == head and saved["num_labels"] == num_labels and saved["layout"] == layout(ticket)
    assert saved["head_masks"] == [m.tolist() for m in heads] and saved["ffn_masks"] == [m.tolist() for m in ffn]
    assert (saved["lambda_head"], saved["lambda_ffn"], saved["eps"], saved["window"]) == (1e-4, 2e-4, 0.1, 5)
    assert saved["found_at_step"] == 120 and saved["metrics"] == {"accuracy": 0.5} and saved["task"] == "sst2"
    assert saved["mask_config"]["ffn_scope"] == "global"
    if head == "mlm":
        assert res["tied"] and res["bias_tied"]


def test_files_hold_no_coefficients_and_shared_tensors_once(tmp_path):
    ticket, tok, info, _ = make("mlm")
    out = T.save_ticket(ticket, tok, tmp_path / "t", info)
    names = set(load_file(str(out / "model.safetensors")))
    assert not any(n.endswith(("head_coef", "ffn_coef")) for n in names)
    assert "bert.embeddings.word_embeddings.weight" in names and "cls.predictions.decoder.weight" not in names
    config = json.loads((out / "config.json").read_text())
    assert {k: config[k] for k in ("pre_ln", "heads_per_layer", "ffn_per_layer")} == layout(ticket)
    assert config["model_type"] == "tickettune_bert" and "tickettune" not in config
    heads, ffn = T.masks_of(T.read_info(out))
    assert [int(m.sum()) for m in heads] == layout(ticket)["heads_per_layer"]


def test_minilm_ticket_through_load_model(tmp_path):
    model, tok = load_model("minilm-l6", head="classification")
    pretrained = draw.snapshot(model)
    attach(model)
    heads, ffn = masks_from_model(model, MaskConfig())  # all coefficients 1.0: first 8 heads; 3686 FFN
    # neurons pruned round-robin from the layers' ends (the last two layers lose one more)
    ticket = draw.make_ticket(pretrained, model, heads, ffn).eval()
    out = T.save_ticket(ticket, tok, tmp_path / "minilm-ticket", T.ticket_info(heads, ffn))
    again, _ = load_model(str(out), head="classification")
    assert (
        layout(again)
        == layout(ticket)
        == {"pre_ln": False, "heads_per_layer": [8] * 6, "ffn_per_layer": [922] * 4 + [921] * 2}
    )
    torch.testing.assert_close(logits(again), logits(ticket), rtol=0, atol=1e-5)


def test_mlm_ticket_fine_tuned_with_another_head(tmp_path):
    ticket, tok, info, _ = make("mlm")
    out = T.save_ticket(ticket, tok, tmp_path / "t", info)
    clf, _ = load_model(str(out), head="classification", num_labels=2)
    torch.testing.assert_close(
        clf.bert.embeddings.word_embeddings.weight, ticket.bert.embeddings.word_embeddings.weight
    )
    torch.testing.assert_close(
        clf.bert.encoder.layer[1].output.dense.weight, ticket.bert.encoder.layer[1].output.dense.weight
    )
    assert clf.classifier.out_features == 2


def test_wrong_num_labels_for_the_same_head_is_an_error(tmp_path):
    ticket, tok, info, _ = make("classification", 3)
    out = T.save_ticket(ticket, tok, tmp_path / "t", info)
    with pytest.raises(ValueError, match="num_labels"):
        load_model(str(out), head="classification", num_labels=2)


def test_existing_dir_refused_unless_overwrite(tmp_path):
    ticket, tok, info, _ = make()
    out = T.save_ticket(ticket, tok, tmp_path / "t", info)
    before = listing(out)
    with pytest.raises(FileExistsError, match="overwrite"):
        T.save_ticket(ticket, tok, out, {**info, "task": "other"})
    assert listing(out) == before
    T.save_ticket(ticket, tok, out, {**info, "task": "other"}, overwrite=True)
    assert T.read_info(out)["task"] == "other"
    assert leftovers(tmp_path, "t") == []


def test_overwrite_without_renameat2(tmp_path, monkeypatch):
    ticket, tok, info, _ = make()
    out = T.save_ticket(ticket, tok, tmp_path / "t", info)
    monkeypatch.setattr(T, "_exchange", lambda a, b: False)
    T.save_ticket(ticket, tok, out, {**info, "task": "fallback"}, overwrite=True)
    assert T.read_info(out)["task"] == "fallback"
    assert leftovers(tmp_path, "t") == []


@pytest.mark.parametrize("where", ["weights", "tokenizer", "publish"])
def test_failure_mid_save_leaves_the_old_ticket_and_no_temp_dir(tmp_path, monkeypatch, where):
    ticket, tok, info, _ = make()
    out = T.save_ticket(ticket, tok, tmp_path / "t", info)
    before = listing(out)

    def boom(*args, **kwargs):
        if where == "weights":  # half a file written, then the disk "fills up"
            Path(args[1]).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    if where == "weights":
        monkeypatch.setattr(T, "save_file", boom)
    elif where == "tokenizer":
        monkeypatch.setattr(type(tok), "save_pretrained", boom)
    else:
        monkeypatch.setattr(T, "_exchange", boom)
    with pytest.raises(OSError, match="No space"):
        T.save_ticket(ticket, tok, out, {**info, "task": "new"}, overwrite=True)
    assert listing(out) == before
    assert leftovers(tmp_path, "t") == []
    if where == "publish":  # a first save does not swap, it renames
        return
    # a first save that fails leaves nothing at all
    with pytest.raises(OSError):
        T.save_ticket(ticket, tok, tmp_path / "fresh", info)
    assert not (tmp_path / "fresh").exists() and leftovers(tmp_path, "fresh") == []


def test_bad_input_refused_before_writing(tmp_path):
    ticket, tok, info, _ = make()
    with pytest.raises(TypeError, match="info.model"):
        T.save_ticket(ticket, tok, tmp_path / "t", {"model": object()})
    with pytest.raises(ValueError, match="head"):
        T.save_ticket(ticket, tok, tmp_path / "t", {"head": "mlm"})
    attach(ticket)
    with pytest.raises(ValueError, match="coefficients"):
        T.save_ticket(ticket, tok, tmp_path / "t", info)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="ticket.json"):
        T.load_ticket(tmp_path)


def test_info_values_become_strict_json(tmp_path):
    import numpy as np

    ticket, tok, info, _ = make()
    out = T.save_ticket(
        ticket,
        tok,
        tmp_path / "t",
        {
            **info,
            "metrics": {"loss": float("nan"), "ppl": float("inf"), "acc": np.float32(0.5)},
            "history": torch.tensor([1, 2]),
            "ids": np.arange(3),
        },
    )
    saved = json.loads((out / "ticket.json").read_text())  # json.loads would accept NaN; the text must not hold it
    assert "NaN" not in (out / "ticket.json").read_text() and "Infinity" not in (out / "ticket.json").read_text()
    assert saved["metrics"] == {"loss": None, "ppl": None, "acc": 0.5}
    assert saved["history"] == [1, 2] and saved["ids"] == [0, 1, 2]


@pytest.mark.slow
def test_bench_ticket_speed_runs(tmp_path):
    """The benchmark at a toy size: every variant runs and the JSON holds the figures."""
    out = tmp_path / "speed.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    script = Path(__file__).resolve().parents[3] / "scripts" / "bench" / "ticket_speed.py"
    subprocess.run(
        [
            sys.executable,
            str(script),
            "--steps",
            "2",
            "--warmup",
            "1",
            "--batch-size",
            "2",
            "--seq-len",
            "8",
            "--threads",
            "1",
            "--variants",
            "all",
            "--json",
            str(out),
        ],
        check=True,
        env=env,
        timeout=600,
    )
    res = json.loads(out.read_text())
    assert 0.60 < res["flop_ratio"] < 0.65 and res["ticket_layout"]["heads_per_layer"] == [8] * 6
    assert all(w % 8 == 0 for w in res["ticket_layout"]["ffn_per_layer"])
    assert set(res["variants"]) == {"base", "unrounded", "foreach", "no_dropout", "frozen_word_emb", "fast_path"}
    assert res["step_time_ratio"] > 0
