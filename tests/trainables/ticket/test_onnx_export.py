"""ONNX export of tickets: every family's ticket (tiny random models, uneven widths) exports with dynamic batch
and sequence axes, and ONNX Runtime's outputs equal tickettune's (fp32, within 1e-4) at shapes the trace never
saw; the CLI writes model.onnx beside a ticket, and without onnx/onnxruntime says which extra to install."""

import importlib.util
import json

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx", reason="the optional extra 'onnx' (pip install 'tickettune[onnx]')")
pytest.importorskip("onnxruntime", reason="the optional extra 'onnx' (pip install 'tickettune[onnx]')")

from tickettune.searcher import cli  # noqa: E402 (after the extra's importorskip)
from tickettune.trainables.model.build import load_model  # noqa: E402 (after the extra's importorskip)
from tickettune.trainables.model.families import FAMILIES, HEADS  # noqa: E402 (after the extra's importorskip)
from tickettune.trainables.model.prune import prune_model  # noqa: E402 (after the extra's importorskip)
from tickettune.trainables.testing.random_models import write_random_model  # noqa: E402 (after the extra's importorskip)
from tickettune.trainables.ticket import onnx_export as OX  # noqa: E402 (after the extra's importorskip)
from tickettune.trainables.ticket.format import load_ticket, save_ticket, ticket_info  # noqa: E402 (after the extra's importorskip)

pytestmark = pytest.mark.usefixtures("one_thread")
# every model_type once, each with a head in turn; BERT with every head; ModernBERT's QA (its sliding-window
# layers: the dynamo exporter drifted to 1e-3 there) and DistilBERT's classifier
CASES = (
    [(t, HEADS[i % len(HEADS)]) for i, t in enumerate(sorted(FAMILIES))]
    + [("bert", h) for h in HEADS]
    + [("modernbert", "qa"), ("distilbert", "classification")]
)
CASES = list(dict.fromkeys(CASES))
TEXTS = [
    "short",
    "a sentence of a length the trace never saw, with padding in the other rows of its batch",
    "and a third row",
    (
        "the sliding window of modernbert's local layers is eight tokens wide here, so "
        "this row reaches well past it and the global layers see it whole"
    ),
]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("onnx-sources")
    return {t: write_random_model(t, tmp / t) for t in sorted({t for t, _ in CASES})}


def family_ticket(source, head, path, seed=0):
    torch.manual_seed(seed)
    model, tok = load_model(str(source), head=head, num_labels=3)
    with torch.no_grad():  # biases and norms away from 0 / 1
        for name, p in model.named_parameters():
            if "norm" in name.lower() or name.endswith(".bias"):
                p.add_(torch.randn(p.shape) * 0.1)
    heads = [torch.tensor([True, False, False, False]), torch.tensor([False, True, True, True])]
    ffn = [torch.arange(64) % 3 != 0, torch.arange(64) % 4 == 0]
    model = prune_model(model, heads, ffn).eval()
    return save_ticket(model, tok, path, ticket_info(heads, ffn))


@pytest.mark.parametrize("model_type,head", CASES)
def test_every_family_exports_and_matches(sources, tmp_path, model_type, head):
    path = family_ticket(sources[model_type], head, tmp_path / "ticket")
    assert cli.main(["export-onnx", str(path)]) == 0
    onnx_file = path / OX.ONNX_FILE
    graph = onnx.load(str(onnx_file)).graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert all(d == ["batch", "sequence"] for d in dims.values()), dims
    assert ("token_type_ids" in dims) == (model_type in ("bert", "electra"))  # RoBERTa's one type: not an input
    model, tok, _ = load_ticket(path)  # tickettune's own loading of the saved ticket
    for texts in (TEXTS, TEXTS[1:2]):  # batch 4 and batch 1, other lengths than the trace's
        batch = OX.sample_batch(tok, texts)
        with torch.no_grad():
            out = model(**batch)
        expected = [out[k].numpy() for k in OX.output_names(head)]
        got = OX.run_onnx(onnx_file, batch)
        assert [g.shape for g in got] == [e.shape for e in expected]
        diff = max(float(np.abs(g - e).max()) for g, e in zip(got, expected))
        print(f"{model_type} {head} batch {len(texts)}: max |ORT - torch| = {diff:.2g}")
        assert diff <= 1e-4


def test_a_failed_check_leaves_nothing(sources, tmp_path):
    path = family_ticket(sources["bert"], "classification", tmp_path / "ticket")
    model, tok, _ = load_ticket(path)
    with pytest.raises(ValueError, match="differ from PyTorch"):
        OX.export_onnx(model, tok, "classification", path / OX.ONNX_FILE, atol=-1.0)
    assert not [p.name for p in path.iterdir() if "onnx" in p.name]


def test_missing_extra_is_named(sources, tmp_path, monkeypatch, capsys):
    path = family_ticket(sources["bert"], "classification", tmp_path / "ticket")
    capsys.readouterr()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    for argv in (
        ["export-onnx", str(path)],
        ["export", str(tmp_path / "experiment"), "--out", str(tmp_path / "x"), "--onnx"],
    ):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "tickettune[onnx]" in err and "onnxruntime" in err, err
    assert not (path / OX.ONNX_FILE).exists() and not (tmp_path / "x").exists()


def test_export_with_onnx_writes_it_into_the_exported_ticket(tmp_path, capsys):
    from search_fakes import make_experiment

    exp = make_experiment(
        tmp_path,
        [
            {"id": "a", "config": {"eps": 0.1}, "val": 0.8, "cost": 0.6},
            {"id": "b", "config": {"eps": 0.2}, "val": 0.7, "cost": 0.5},
        ],
    )
    assert cli.main(["export", str(exp), "--out", str(tmp_path / "best"), "--onnx"]) == 0
    assert (tmp_path / "best" / OX.ONNX_FILE).is_file() and "model.onnx" in capsys.readouterr().out
    meta = json.loads((tmp_path / "best" / "export.json").read_text())
    assert meta["path"] == str((tmp_path / "best").absolute())
