"""`tickettune predict`: rows in, one prediction per row out in the same order, label names from the ticket,
QA answers with their character spans, bad requests refused in one line before the model loads, output
never half written. Tiny scratch BERT tickets (random weights): what is checked is the plumbing, not accuracy."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from tickettune.searcher import cli
from tickettune.searcher import predict as P
from tickettune.trainables import inference
from tickettune.trainables.model.build import ScratchConfig, scratch_model
from tickettune.trainables.model.prune import prune_model
from tickettune.trainables.tasks import get_task
from tickettune.trainables.ticket.format import save_ticket, ticket_info

pytestmark = pytest.mark.usefixtures("one_thread")

SENTENCES = [
    "a gripping , funny film",
    "dull",
    "the plot never quite comes together , but the actors are worth the ticket alone",
    "bad",
    "it is a masterpiece of its kind , long and slow and lovely",
    "meh .",
    "one of the best films of the year",
    "not good",
]
CONTEXT = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named "
    "after the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889. "
    "It was the tallest man-made structure in the world until the Chrysler Building was finished in 1930."
)
QUESTIONS = [
    "Who is the tower named after?",
    "Where is the tower?",
    "When was it built?",
    "What was taller after 1930?",
    "What is it made of?",
]


def tiny(head: str, num_labels: int, seed: int = 0, prune: bool = True):
    torch.manual_seed(seed)
    model, tok = scratch_model(
        ScratchConfig(layers=2, heads=4, hidden=32, ffn=64, max_positions=128), head=head, num_labels=num_labels
    )
    if not prune:
        return model.eval(), tok, None, None
    heads = [torch.tensor([True, False, True, True]), torch.tensor([False, True, False, False])]
    ffn = [torch.arange(64) % 3 != 0, torch.arange(64) % 2 == 0]
    return prune_model(model, heads, ffn).eval(), tok, heads, ffn


@pytest.fixture(scope="module")
def tickets(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict")
    out = {}
    for name, head, n, task in (
        ("sst2", "classification", 2, get_task("sst2").info()),
        ("mnli", "classification", 3, get_task("mnli").info()),
        ("stsb", "regression", 1, get_task("stsb").info()),
        ("squad", "qa", 2, get_task("squad").info()),
        ("mlm", "mlm", 2, {"name": "wikitext", "head": "mlm"}),
    ):
        model, tok, heads, ffn = tiny(head, n)
        out[name] = save_ticket(model, tok, tmp / name, ticket_info(heads, ffn, task=task, flow={"max_length": 64}))
    return out


def write(path: Path, rows: dict) -> Path:
    df = pd.DataFrame(rows)
    {
        ".csv": lambda: df.to_csv(path, index=False),
        ".tsv": lambda: df.to_csv(path, sep="\t", index=False),
        ".jsonl": lambda: df.to_json(path, orient="records", lines=True),
        ".parquet": lambda: df.to_parquet(path),
    }[path.suffix]()
    return path


def run(*argv) -> int:
    return cli.main(["predict", *map(str, argv), "--no-progress"])


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_classification_keeps_order_columns_and_label_names(tickets, tmp_path):
    ids = list(range(100, 100 + len(SENTENCES)))
    src = write(tmp_path / "in.tsv", {"id": ids, "sentence": SENTENCES, "label": [1, 0] * 4})
    out = tmp_path / "out.jsonl"  # fp32: compared below to the model's own fp32 forward (auto is bf16 on a bf16 CPU)
    assert run(tickets["sst2"], "--input", src, "--out", out, "--batch-size", 3, "--precision", "fp32") == 0
    rows = read_jsonl(out)
    # the input's columns in the input's order; its gold label kept under input_label
    assert [r["id"] for r in rows] == [str(i) for i in ids] and [r["sentence"] for r in rows] == SENTENCES
    assert [r["input_label"] for r in rows] == ["1", "0"] * 4
    assert {r["label"] for r in rows} <= {"negative", "positive"}
    # each row's prediction is what the model says about that row alone (length sorting undone)
    model, tok, _ = __import__("tickettune.trainables.ticket.format", fromlist=["load_ticket"]).load_ticket(
        tickets["sst2"]
    )
    for r in rows:
        with torch.no_grad():
            p = torch.softmax(model(**tok(r["sentence"], return_tensors="pt")).logits[0], -1)
        assert r["label"] == ["negative", "positive"][int(p.argmax())]
        assert r["score"] == pytest.approx(float(p.max()), abs=1e-5)


def test_pairs_regression_csv_out_and_formats(tickets, tmp_path):
    pairs = {"premise": SENTENCES, "hypothesis": SENTENCES[::-1]}
    for suffix in (".csv", ".jsonl", ".parquet"):
        src = write(tmp_path / f"in{suffix}", pairs)
        assert run(tickets["mnli"], "--input", src, "--out", tmp_path / f"mnli{suffix}.csv") == 0
        out = pd.read_csv(tmp_path / f"mnli{suffix}.csv")
        assert list(out.columns) == ["premise", "hypothesis", "label", "score"] and len(out) == len(SENTENCES)
        assert set(out["label"]) <= {"entailment", "neutral", "contradiction"}
        assert ((out["score"] >= 1 / 3) & (out["score"] <= 1)).all()
    src = write(tmp_path / "sts.csv", {"sentence1": SENTENCES, "sentence2": SENTENCES[::-1]})
    assert run(tickets["stsb"], "--input", src, "--out", tmp_path / "sts.jsonl") == 0
    rows = read_jsonl(tmp_path / "sts.jsonl")
    assert all(r["label"] is None and isinstance(r["score"], float) for r in rows)
    # batch size and row order change nothing about a row's prediction
    rev = write(tmp_path / "sts_rev.csv", {"sentence1": SENTENCES[::-1], "sentence2": SENTENCES})
    assert run(tickets["stsb"], "--input", rev, "--out", tmp_path / "rev.jsonl", "--batch-size", 1) == 0
    again = read_jsonl(tmp_path / "rev.jsonl")[::-1]
    assert [r["score"] for r in again] == pytest.approx([r["score"] for r in rows], abs=1e-5)


def test_dense_checkpoint_labels_from_id2label(tmp_path):
    model, tok, _, _ = tiny("classification", 3, prune=False)
    model.config.id2label = {0: "sad", 1: "calm", 2: "glad"}
    model.save_pretrained(tmp_path / "dense")  # a plain HF folder, as transformers writes it
    tok.save_pretrained(tmp_path / "dense")
    facts = inference.model_facts(str(tmp_path / "dense"))
    assert (facts.head, facts.labels, facts.is_ticket) == ("classification", ["sad", "calm", "glad"], False)
    src = write(tmp_path / "in.csv", {"text": SENTENCES})
    assert run(tmp_path / "dense", "--input", src, "--out", tmp_path / "out.jsonl") == 0
    assert {r["label"] for r in read_jsonl(tmp_path / "out.jsonl")} <= {"sad", "calm", "glad"}


def test_qa_answers_with_character_spans(tickets, tmp_path):
    contexts = [CONTEXT, CONTEXT[:120], CONTEXT * 2, CONTEXT[50:], "Paris."]
    src = write(tmp_path / "qa.jsonl", {"qid": list("abcde"), "question": QUESTIONS, "context": contexts})
    # 48-token windows: the long contexts span several windows
    assert (
        run(tickets["squad"], "--input", src, "--out", tmp_path / "a.jsonl", "--max-length", 48, "--batch-size", 2) == 0
    )
    rows = read_jsonl(tmp_path / "a.jsonl")
    assert [r["qid"] for r in rows] == list("abcde")
    for r in rows:
        assert r["answer"] and r["context"][r["answer_start"] : r["answer_end"]] == r["answer"]
    rev = write(tmp_path / "rev.csv", {"question": QUESTIONS[::-1], "context": contexts[::-1]})
    assert (
        run(tickets["squad"], "--input", rev, "--out", tmp_path / "b.jsonl", "--max-length", 48, "--batch-size", 1) == 0
    )
    again = read_jsonl(tmp_path / "b.jsonl")[::-1]
    assert [(r["answer_start"], r["answer_end"]) for r in again] == [(r["answer_start"], r["answer_end"]) for r in rows]


@pytest.fixture
def no_model_load(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the model was loaded before the request was checked")

    monkeypatch.setattr(P, "load_served", refuse)


@pytest.mark.usefixtures("no_model_load")
@pytest.mark.parametrize(
    "case",
    [
        "missing_column",
        "empty_file",
        "header_only",
        "mlm_model",
        "bare_encoder",
        "bad_out",
        "qa_one_column",
        "missing_file",
    ],
)
def test_bad_requests_one_line_exit_2_before_loading(tickets, tmp_path, capsys, case):
    good = write(tmp_path / "in.csv", {"sentence": SENTENCES})
    model, inp, out, extra = tickets["sst2"], good, tmp_path / "out.jsonl", []
    expect = {
        "missing_column": "no column 'sentence'",
        "empty_file": "file is empty",
        "header_only": "no data rows",
        "mlm_model": "masked-LM head",
        "bare_encoder": "no task head",
        "bad_out": "unknown format '.txt'",
        "qa_one_column": "question,context",
        "missing_file": "not found",
    }[case]
    if case == "missing_column":
        inp = write(tmp_path / "other.csv", {"text": SENTENCES})
    elif case == "empty_file":
        (inp := tmp_path / "empty.csv").write_text("")
    elif case == "header_only":
        (inp := tmp_path / "header.csv").write_text("sentence\n")
    elif case == "mlm_model":
        model = tickets["mlm"]
    elif case == "bare_encoder":
        model = "minilm-l6"
    elif case == "bad_out":
        out = tmp_path / "out.txt"
    elif case == "qa_one_column":
        model, extra = tickets["squad"], ["--text-columns", "question"]
    elif case == "missing_file":
        inp = tmp_path / "nope.csv"
    assert run(model, "--input", inp, "--out", out, *extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expect in err and "Traceback" not in err, err
    assert not out.exists()


def test_output_is_never_half_written(tickets, tmp_path, monkeypatch, capsys):
    src = write(tmp_path / "in.csv", {"sentence": SENTENCES})
    out = tmp_path / "out.jsonl"
    out.write_text("previous predictions\n")

    def cut_short(self, path, **kw):  # the writer dies after half a line
        Path(path).write_text('{"sentence": "a grip')
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_json", cut_short)
    assert run(tickets["sst2"], "--input", src, "--out", out) == 1  # an OSError: unexpected, exit 1
    assert "disk full" in capsys.readouterr().err
    assert out.read_text() == "previous predictions\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.jsonl"]  # no temp file left behind
