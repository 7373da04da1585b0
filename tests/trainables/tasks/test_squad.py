"""SQuAD v1.1 / v2.0: official-format fixtures (tests/fixtures/squad), windows with a stride, answer
post-processing, EM/F1 as the official scripts score, and a QA ticket end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tickettune.searcher.cli import main
from tickettune.trainables.config import FlowConfig
from tickettune.trainables.flow import run_flow
from tickettune.trainables.model.build import ScratchConfig, scratch_model
from tickettune.trainables.reporter import LocalReporter
from tickettune.trainables.tasks import DataArgs, get_task
from tickettune.trainables.tasks import squad as S
from tickettune.trainables.tasks.squad_eval import best_answers, f1, normalize_answer, squad_scores
from tickettune.trainables.ticket.format import load_ticket

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"  # tests/fixtures
V1, V2 = S.SPECS
TINY = {"layers": 2, "heads": 2, "hidden": 32, "ffn": 64, "pre_ln": True}


def test_normalisation_and_scores_by_hand():
    assert normalize_answer("The  Cat, sat!  ") == "cat sat"
    assert normalize_answer("an apple and a theme") == "apple and theme"  # whole words only
    assert f1("the cat sat", "a cat sat down") == pytest.approx(0.8)  # P = 1, R = 2/3
    golds = {"q1": ["Isambard Kingdom Brunel", "Brunel"], "q2": ["1859"], "q3": []}
    preds = {"q1": "brunel.", "q2": "in 1859", "q3": ""}
    v1 = squad_scores(preds, {k: v for k, v in golds.items() if v}, v2=False)
    assert v1 == pytest.approx({"exact_match": 50.0, "f1": 100 * (1 + 2 / 3) / 2})  # q2: P = 1/2, R = 1
    v2 = squad_scores(preds, golds, v2=True)
    assert v2["exact_match"] == pytest.approx(200 / 3) and v2["no_answer_f1"] == 100.0
    assert v2["has_answer_exact"] == 50.0
    assert squad_scores({"q3": "Brunel"}, {"q3": []}, v2=True)["f1"] == 0.0  # answering the unanswerable
    assert squad_scores({}, {"q1": ["x"]}, v2=False)["f1"] == 0.0  # a missing prediction scores 0


def test_official_json_is_flattened_and_checked(tmp_path):
    v1 = S.load_squad(V1, "dev", FIXTURES)
    v2 = S.load_squad(V2, "dev", FIXTURES)
    assert len(v1) == 8 and len(v2) == 10 and v1.column_names == ["id", "title", "context", "question", "answers"]
    row = v1[0]
    start = row["answers"]["answer_start"][0]
    assert row["context"][start : start + len(row["answers"]["text"][0])] == "Isambard Kingdom Brunel"
    assert v2[v2["id"].index("tea-x")]["answers"] == {"text": [], "answer_start": []}

    (tmp_path / "squad").mkdir()
    doc = json.loads((FIXTURES / "squad" / "train-v1.1.json").read_text())
    doc["data"][1]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] += 1
    (tmp_path / "squad" / "train-v1.1.json").write_text(json.dumps(doc))
    with pytest.raises(
        ValueError,
        match=r"train-v1.1.json: question id 'tea-1' \(article 1, paragraph 0\): "
        r"answer 'Camellia sinensis' is not the context's text",
    ):
        S.load_squad(V1, "train", tmp_path)
    v2doc = json.loads((FIXTURES / "squad" / "train-v2.0.json").read_text())
    (tmp_path / "squad" / "train-v1.1.json").write_text(json.dumps(v2doc))  # unanswerable questions in v1.1
    with pytest.raises(ValueError, match="'tamar-x'.*no answer"):
        S.load_squad(V1, "train", tmp_path)
    (tmp_path / "squad" / "train-v1.1.json").write_text("{not json")
    with pytest.raises(ValueError, match="train-v1.1.json: not a JSON file"):
        S.load_squad(V1, "train", tmp_path)
    shutil.copy(FIXTURES / "squad" / "train-v1.1.json", tmp_path / "squad")
    with pytest.raises(FileNotFoundError, match="squad dev: no file at"):
        get_task("squad").check(DataArgs(root=str(tmp_path)))


def test_window_boundary_answer_is_labelled_only_where_whole(minilm_tokenizer):
    """At 48 tokens (stride 24) the Brunel answer is cut at the end of window 3, lies whole in windows 4 and 5
    (their overlap) and is past window 6's start."""
    ds = S.load_squad(V1, "train", FIXTURES).select([0])
    feats = S.train_features(ds, minilm_tokenizer, 48)
    assert len(feats) == 7 and all(len(ids) <= 48 for ids in feats["input_ids"])
    spans = [(f["start_positions"], f["end_positions"]) for f in feats]
    assert spans[0] == spans[1] == spans[2] == spans[3] == spans[6] == (0, 0)  # elsewhere or cut: [CLS]
    for w in (4, 5):
        s, e = spans[w]
        assert minilm_tokenizer.decode(feats[w]["input_ids"][s : e + 1]) == "isambard kingdom brunel"
    # window 3 ends inside the answer: its last context characters are part of "Isambard Kingdom Brunel"
    enc = S.eval_features(ds, minilm_tokenizer, 48)
    last = [o for o in enc[3]["offset_mapping"] if o is not None][-1]
    assert 343 < last[1] < 343 + len("Isambard Kingdom Brunel")


def test_post_processing_across_windows(minilm_tokenizer):
    ds = S.load_squad(V2, "dev", FIXTURES).select([0])
    feats = S.eval_features(ds, minilm_tokenizer, 48)
    ids, offsets = feats["example_id"], feats["offset_mapping"]
    contexts = {ds[0]["id"]: ds[0]["context"]}
    n, width = len(feats), 48
    start, end = np.full((n, width), -5.0), np.full((n, width), -5.0)
    answer = next(i for i, o in enumerate(offsets[4]) if o and o[0] == 343)  # "Isambard" in window 4
    last = next(i for i, o in enumerate(offsets[4]) if o and o[1] == 343 + len("Isambard Kingdom Brunel"))
    assert 2 <= last - answer < 10
    start[4, answer], end[4, last] = 4.0, 4.0  # the whole answer
    tail = [i for i, o in enumerate(offsets[3]) if o]
    cut = next(i for i in tail if offsets[3][i][0] == 343)
    start[3, cut], end[3, tail[-1]] = 3.0, 3.0  # the cut window's best: "Isambard Kingdom ..." cut short, lower
    c0 = next(i for i, o in enumerate(offsets[0]) if o)
    assert offsets[0][c0 + 12] is not None
    start[0, c0], end[0, c0 + 12] = 6.0, 6.0  # higher, but 13 tokens: longer than max_answer_length=10
    start[1, 5], end[1, 3] = 9.0, 9.0  # end before start: never an answer (and 5, 3 are question tokens)
    got = best_answers(start, end, ids, offsets, contexts, n_best=20, max_answer_length=10)
    assert got == {"tamar-1": "Isambard Kingdom Brunel"}
    assert (
        best_answers(start, end, ids, offsets, contexts, max_answer_length=13)["tamar-1"]
        == contexts["tamar-1"][offsets[0][c0][0] : offsets[0][c0 + 12][1]]
    )
    start[1, 0], end[1, 0] = 5.0, 5.0  # one window's null score above the best span's: not enough, the
    assert best_answers(start, end, ids, offsets, contexts, max_answer_length=10, allow_empty=True) == {
        "tamar-1": "Isambard Kingdom Brunel"
    }  # null score is the lowest over the windows
    start[:, 0], end[:, 0] = 5.0, 5.0  # v2: every window's null score above the best span's -> no answer
    assert best_answers(start, end, ids, offsets, contexts, max_answer_length=10, allow_empty=True) == {"tamar-1": ""}
    assert best_answers(start, end, ids, offsets, contexts, max_answer_length=10) == {
        "tamar-1": "Isambard Kingdom Brunel"
    }


@pytest.mark.parametrize("task", ["squad", "squad_v2"])
def test_flow_trains_prunes_and_saves_a_qa_ticket(tmp_path, task, one_thread):
    cfg = FlowConfig(
        scratch=TINY,
        task=task,
        data_root=str(FIXTURES),
        max_length=48,
        batch_size=4,
        lr=1e-3,
        coef_lr=5e-2,
        search_max_steps=4,
        ticket_steps=2,
        mask_interval=2,
        window=2,
        eps=1.0,
        min_ffn=4,
        head_ratio=0.5,
        precision="fp32",
        unconverged="ticket",
    )
    result = run_flow(cfg, LocalReporter(verbose=False), ticket_dir=str(tmp_path / "t"))
    assert result.metric_name == "f1" and 0.0 <= result.val_metric <= 100.0
    model, tok, info = load_ticket(tmp_path / "t")
    assert info["head"] == "qa" and info["task"]["version"] == ("2.0" if task == "squad_v2" else "1.1")
    assert type(model).__name__ == "BertForQuestionAnswering"
    assert [layer.num_heads for layer in model.bert.encoder.layer] == [1, 1]  # pruned: 1 of 2 heads per layer
    data = get_task(task).eval_data(tok, DataArgs(root=str(FIXTURES), max_length=48))
    again = get_task(task).evaluate(model, data, "fp32")  # the reloaded ticket scores what the flow reported
    assert again["f1"] == pytest.approx(result.val_metric, abs=1e-6)


def test_cli_finetune_squad(tmp_path, capsys):
    model, tok = scratch_model(ScratchConfig(**TINY), head="qa")
    model.save_pretrained(tmp_path / "qa")
    tok.save_pretrained(tmp_path / "qa")
    rc = main(
        [
            "finetune",
            "--model",
            str(tmp_path / "qa"),
            "--task",
            "squad_v2",
            "--data-root",
            str(FIXTURES),
            "--max-steps",
            "2",
            "--batch-size",
            "4",
            "--max-length",
            "48",
            "--precision",
            "fp32",
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 0 and "dev exact_match=" in out and " f1=" in out and "no_answer_f1=" in out, err
