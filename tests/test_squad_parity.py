"""SQuAD as HF's run_qa recipe does it: windows of 256 tokens overlapping by 128, their labels at the
boundaries (an answer cut by a window's end, an answer in two windows' overlap, an answer outside), the same
labels and answers as the run_qa-style code of scripts/bench/qa_parity.py (scripts/benchkit/run_qa.py), the QA
loss, the official v1.1 metric against hand-computed cases. The benchmark's own tests:
tests/scripts/test_bench_qa_parity.py."""

from __future__ import annotations

import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset

from tickettune.trainables.tasks import get_task
from tickettune.trainables.tasks import squad as S
from tickettune.trainables.tasks.squad_eval import best_answers, squad_scores

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))  # benchkit: the reference recipe
from benchkit import run_qa

WORDS = ["river", "stone", "house", "green", "light", "music", "paper", "table", "water", "north"]  # 1 token each
CONTEXT = " ".join(WORDS[i % len(WORDS)] for i in range(600))  # word k = context token k
QUESTION = "where is it?"  # 4 tokens: a 256-token window holds 249 context tokens and moves on by 249 - 128


def char_of(word: int) -> int:
    return len(" ".join(WORDS[i % len(WORDS)] for i in range(word))) + (word > 0)


def example(first: int, last: int, qid: str = "q") -> dict:
    """A question whose answer is context words first..last."""
    text = CONTEXT[char_of(first) : char_of(last) + len(WORDS[last % len(WORDS)])]
    return {
        "id": qid,
        "title": "t",
        "context": CONTEXT,
        "question": QUESTION,
        "answers": {"text": [text], "answer_start": [char_of(first)]},
    }


def windows(rows: list[dict], tokenizer, max_length: int = 256):
    ds = Dataset.from_list(rows)
    return S.train_features(ds, tokenizer, max_length), S.eval_features(ds, tokenizer, max_length), ds


def test_the_window_overlap_is_run_qas_128_tokens():
    assert S.stride_for(256) == S.stride_for(384) == S.stride_for(512) == 128  # run_qa's doc_stride
    assert S.stride_for(128) == 64 and S.stride_for(48) == 24  # half a window shorter than 256
    assert get_task("squad").default_max_length == 384 and get_task("sst2").default_max_length == 64


def test_windows_start_every_121_words_and_share_128_tokens(minilm_tokenizer):
    _, ev, _ = windows([example(10, 12)], minilm_tokenizer)
    ctx = [[o for o in offs if o is not None] for offs in ev["offset_mapping"]]
    assert [len(c) for c in ctx] == [249, 249, 249, 600 - 363]  # windows start at words 0, 121, 242, 363
    assert [c[0][0] for c in ctx] == [char_of(0), char_of(121), char_of(242), char_of(363)]
    for a, b in pairwise(ctx):
        assert a[-128:] == b[:128]  # consecutive windows share exactly 128 context tokens


@pytest.mark.parametrize(
    "first,last,holding",
    [
        (245, 250, [1, 2]),  # cut by window 0's end (word 248): [CLS] there; whole in windows 1 and 2
        (130, 132, [0, 1]),  # in the overlap of windows 0 and 1: labelled in both
        (500, 502, [3]),  # outside windows 0-2: [CLS] there
        (597, 599, [3]),  # the last words of the context, in the last window
        (0, 0, [0]),  # the first context token
        (246, 248, [0, 1, 2]),  # ends on window 0's last token
        (249, 251, [1, 2]),  # starts one past window 0's last token
    ],
)
def test_window_labels_at_the_boundaries(minilm_tokenizer, first, last, holding):
    tr, _, ds = windows([example(first, last)], minilm_tokenizer)
    assert len(tr) == 4
    gold = ds[0]["answers"]["text"][0]
    for w, row in enumerate(tr):
        s, e = row["start_positions"], row["end_positions"]
        if w in holding:
            assert 0 < s <= e and minilm_tokenizer.decode(row["input_ids"][s : e + 1]) == gold, w
        else:
            assert (s, e) == (0, 0), w  # the window does not hold the whole answer: [CLS]
    # the run_qa-style labelling written in the benchmark agrees, window for window
    hf = ds.map(
        run_qa.hf_train_windows,
        batched=True,
        remove_columns=ds.column_names,
        fn_kwargs={"tokenizer": minilm_tokenizer, "max_length": 256, "stride": 128},
    )
    assert hf["start_positions"] == tr["start_positions"] and hf["end_positions"] == tr["end_positions"]
    assert [ids[: len(mine)] for ids, mine in zip(hf["input_ids"], tr["input_ids"])] == tr["input_ids"]


def test_fixture_labels_and_answers_match_the_run_qa_style_code(minilm_tokenizer):
    fixtures = Path(__file__).parent / "fixtures"
    for spec in S.SPECS:  # v2's unanswerable questions point at [CLS] in both
        ds = S.load_squad(spec, "train", fixtures)
        tr = S.train_features(ds, minilm_tokenizer, 48)
        hf = ds.map(
            run_qa.hf_train_windows,
            batched=True,
            remove_columns=ds.column_names,
            fn_kwargs={"tokenizer": minilm_tokenizer, "max_length": 48, "stride": S.stride_for(48)},
        )
        assert len(tr) > len(ds) and hf["start_positions"] == tr["start_positions"]
        assert hf["end_positions"] == tr["end_positions"]
    ds = S.load_squad(S.SPECS[0], "dev", fixtures)
    ev = S.eval_features(ds, minilm_tokenizer, 48)
    rng = np.random.default_rng(0)
    start, end = rng.normal(size=(len(ev), 48)), rng.normal(size=(len(ev), 48))
    for w, offs in enumerate(ev["offset_mapping"]):  # past a window's end, as qa_logits pads
        start[w, len(offs) :] = end[w, len(offs) :] = -np.inf
    contexts = dict(zip(ds["id"], ds["context"]))
    ours = best_answers(start, end, ev["example_id"], ev["offset_mapping"], contexts, 20, 30)
    assert ours == run_qa.hf_answers(start, end, ev["example_id"], ev["offset_mapping"], contexts)
    assert all(a for a in ours.values())


def test_post_processing_n_best_and_max_answer_tokens_on_hand_made_logits(minilm_tokenizer):
    _, ev, _ = windows([example(130, 132, "a")], minilm_tokenizer)
    offs = ev["offset_mapping"]
    contexts = {"a": CONTEXT}
    start, end = np.full((4, 256), -10.0), np.full((4, 256), -10.0)

    def tok(window: int, word: int) -> int:  # the token index of context word `word` in `window`
        return next(i for i, o in enumerate(offs[window]) if o and o[0] == char_of(word))

    start[1, tok(1, 130)], end[1, tok(1, 132)] = 2.0, 2.0  # the gold span, in window 1: score 4
    start[0, tok(0, 140)], end[0, tok(0, 170)] = 5.0, 5.0  # 31 tokens: over max_answer_length 30
    start[2, 0], end[2, 0] = 9.0, 9.0  # [CLS] in window 2: never a v1 answer
    start[3, 5], end[3, 2] = 8.0, 8.0  # a question token / end before start
    expected = {"a": CONTEXT[char_of(130) : char_of(133) - 1]}
    for fn in (
        lambda s, e: best_answers(s, e, ev["example_id"], offs, contexts, 20, 30),
        lambda s, e: run_qa.hf_answers(s, e, ev["example_id"], offs, contexts),
    ):
        assert fn(start, end) == expected
    end[0, tok(0, 169)] = 5.0  # 30 tokens: allowed, and the best
    assert (
        best_answers(start, end, ev["example_id"], offs, contexts, 20, 30)["a"]
        == CONTEXT[char_of(140) : char_of(170) - 1]
    )
    end[0, tok(0, 169)] = -10.0
    # n-best: 21 starts above the gold one's in window 1 (all after its end): with 20 the gold start is never
    # paired, with 22 it is and wins
    start[1, [tok(1, w) for w in range(140, 161)]] = 3.0
    assert best_answers(start, end, ev["example_id"], offs, contexts, 20, 30)["a"] != expected["a"]
    assert run_qa.hf_answers(start, end, ev["example_id"], offs, contexts)["a"] != expected["a"]
    assert best_answers(start, end, ev["example_id"], offs, contexts, 22, 30) == expected


def test_a_long_question_gets_a_smaller_stride_not_a_tokenizer_panic(minilm_tokenizer):
    long_q = " ".join(["which"] * 150) + "?"  # 151 tokens: 102 context tokens per 256-token window
    assert S.question_strides([QUESTION, long_q], ["short", "long"], minilm_tokenizer, 256) == [128, 102 - 25]
    tr, ev, ds = windows(
        [example(10, 12, "short"), {**example(130, 132), "id": "long", "question": long_q}], minilm_tokenizer
    )
    ids = ev["example_id"]
    assert ids[:4] == ["short"] * 4 and set(ids[4:]) == {"long"}  # question by question, in order
    ctx = [[o for o in offs if o is not None] for offs, q in zip(ev["offset_mapping"], ids) if q == "long"]
    assert all(a[-77:] == b[:77] for a, b in pairwise(ctx)) and len(ctx) == 1 + -(-(600 - 102) // 25)
    gold = ds[1]["answers"]["text"][0]
    labelled = [
        minilm_tokenizer.decode(r["input_ids"][r["start_positions"] : r["end_positions"] + 1])
        for r, q in zip(tr, ids)
        if q == "long" and r["start_positions"] > 0
    ]
    assert labelled and set(labelled) == {gold}
    with pytest.raises(ValueError, match="question id 'huge': its 300 tokens leave no room"):
        windows([{**example(1, 2), "id": "huge", "question": " ".join(["which"] * 300)}], minilm_tokenizer)


def test_qa_loss_is_the_mean_of_start_and_end_cross_entropy(one_thread):
    from tickettune.trainables.model.build import ScratchConfig, scratch_model

    torch.manual_seed(0)
    model, _ = scratch_model(ScratchConfig(layers=1, heads=2, hidden=32, ffn=64), head="qa")
    model.eval()
    ids = torch.randint(1000, 2000, (3, 12))
    starts, ends = torch.tensor([0, 4, 11]), torch.tensor([0, 6, 99])  # 99: past the sequence, ignored
    out = model(input_ids=ids, start_positions=starts, end_positions=ends)
    ce = torch.nn.functional.cross_entropy
    expected = (ce(out.start_logits, starts) + ce(out.end_logits, ends.clamp(0, 12), ignore_index=12)) / 2
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_the_metric_is_the_official_v1_1_evaluation_on_hand_computed_cases():
    golds = {
        "tower": ["Eiffel Tower", "the Eiffel Tower"],
        "paris": ["Paris", "Paris France"],
        "apple": ["apple day"],
        "usa": ["U.S."],
        "repeat": ["Paris"],
        "missing": ["anything"],
        "article": ["the"],
        "none": ["Tokyo"],
    }
    preds = {
        "tower": "The Eiffel Tower!",
        "paris": "in Paris, France",
        "apple": "an apple a day",
        "usa": "us",
        "repeat": "paris paris",
        "article": "",
        "none": "Kyoto",
    }
    per_q = {  # (EM, F1) by hand
        "tower": (1, 1.0),  # lower case, punctuation and "the" removed
        "paris": (0, 0.8),  # vs "paris france": P 2/3, R 1 -> 0.8 (vs "paris": 0.5)
        "apple": (1, 1.0),  # "an", "a" removed
        "usa": (1, 1.0),  # "U.S." -> "us"
        "repeat": (0, 2 / 3),  # counts: 1 shared of 2 predicted tokens, P 1/2, R 1
        "missing": (0, 0.0),  # no prediction scores 0
        "article": (1, 0.0),  # v1.1: "" == "" is an exact match, but F1 is 0 (nothing shared)
        "none": (0, 0.0),
    }
    got = squad_scores(preds, golds, v2=False)
    assert got["exact_match"] == pytest.approx(100 * sum(e for e, _ in per_q.values()) / 8)
    assert got["f1"] == pytest.approx(100 * sum(f for _, f in per_q.values()) / 8)
    assert set(got) == {"exact_match", "f1"}
    # v2.0 drops gold answers that normalise to "" and lets an empty prediction match an empty gold
    v2 = squad_scores({"article": ""}, {"article": ["the"]}, v2=True)
    assert v2["exact_match"] == v2["f1"] == 100.0
