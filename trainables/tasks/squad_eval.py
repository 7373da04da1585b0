"""SQuAD scoring, as the official v1.1 / v2.0 evaluation scripts define it, and logits -> answer text.

Scoring: an answer is normalised (lower case, punctuation removed, the articles a/an/the removed, whitespace
collapsed); exact match is 1 when the normalised prediction equals a normalised gold answer, F1 is the token
overlap F1; both take the max over the gold answers and are reported as percentages over all questions. An
unanswerable question (v2) has the single gold answer "", so only the empty prediction scores on it; v2 also
reports the figures over answerable (``has_answer_*``) and unanswerable (``no_answer_*``) questions apart.
The two scripts differ on empty answers, and each version is scored as its own script does: v1.1 keeps every
gold answer and gives F1 0 when nothing is shared (an empty prediction against a gold answer that normalises
to "" included); v2.0 drops gold answers that normalise to "" and an empty prediction matches an empty gold.

Post-processing: a question's context may be split into several windows; in each window the `n_best` start
and end positions are paired, kept when both lie in the context, end >= start and the span is at most
`max_answer_length` tokens, and scored start_logit + end_logit; the best span over all windows is mapped back
to context characters through the tokenizer's offsets. With `allow_empty` (v2) the answer is "" when the
null score (the [CLS] position's start + end logits, lowest over the windows) beats the best span.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str, v2: bool = True) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if v2 and (not pred or not ref):  # v2: an empty answer only matches an empty gold answer
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: dict[str, str], golds: dict[str, Sequence[str]], v2: bool) -> dict[str, float]:
    """exact_match and f1 in percent over every question of `golds` (a missing prediction scores 0); v2 adds
    has_answer_* / no_answer_* (when there are such questions). A question with no gold answer (an
    unanswerable one) is scored against the empty answer."""
    if not golds:
        raise ValueError("no questions to score")
    em, fs, has = [], [], []
    for qid, answers in golds.items():
        answers = ([a for a in answers if normalize_answer(a)] if v2 else list(answers)) or [""]
        pred = predictions.get(qid, "")
        em.append(max(exact_match(pred, a) for a in answers))
        fs.append(max(f1(pred, a, v2) for a in answers))
        has.append(answers != [""])
    em, fs, has = np.array(em), np.array(fs), np.array(has)
    out = {"exact_match": 100.0 * em.mean(), "f1": 100.0 * fs.mean()}
    if v2:
        for name, mask in (("has_answer", has), ("no_answer", ~has)):
            if mask.any():
                out[f"{name}_exact"] = 100.0 * em[mask].mean()
                out[f"{name}_f1"] = 100.0 * fs[mask].mean()
    return {k: float(v) for k, v in out.items()}


def best_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    feature_example: Sequence[str],
    offsets: Sequence[Sequence[tuple[int, int] | None]],
    n_best: int = 20,
    max_answer_length: int = 30,
    allow_empty: bool = False,
) -> dict[str, tuple[int, int, float]]:
    """(start_char, end_char, score) of the best answer per example id; (0, 0, null score) when there is none
    or, with `allow_empty`, when the null score wins. Row i of the logits belongs to window i: its example id
    and its token offsets (None for tokens outside the context: question, special tokens, padding)."""
    best: dict[str, tuple[float, int, int]] = {}
    null: dict[str, float] = {}
    for i, qid in enumerate(feature_example):
        start, end, offs = start_logits[i], end_logits[i], offsets[i]
        n = min(len(offs), len(start))
        score_null = float(start[0] + end[0])
        null[qid] = min(null.get(qid, score_null), score_null)
        starts = np.argsort(start[:n])[::-1][:n_best]
        ends = np.argsort(end[:n])[::-1][:n_best]
        for s in starts:
            if offs[s] is None:
                continue
            for e in ends:
                if offs[e] is None or e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(start[s] + end[e])
                if qid not in best or score > best[qid][0]:
                    best[qid] = (score, int(offs[s][0]), int(offs[e][1]))
    out = {}
    for qid in dict.fromkeys(feature_example):
        score, lo, hi = best.get(qid, (-np.inf, 0, 0))
        out[qid] = (0, 0, null[qid]) if allow_empty and null[qid] > score or qid not in best else (lo, hi, score)
    return out


def best_answers(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    feature_example: Sequence[str],
    offsets: Sequence[Sequence[tuple[int, int] | None]],
    contexts: dict[str, str],
    n_best: int = 20,
    max_answer_length: int = 30,
    allow_empty: bool = False,
) -> dict[str, str]:
    """The answer text per example id (`best_spans` cut out of its context)."""
    spans = best_spans(start_logits, end_logits, feature_example, offsets, n_best, max_answer_length, allow_empty)
    return {qid: contexts[qid][lo:hi] for qid, (lo, hi, _) in spans.items()}


__all__ = ["best_answers", "best_spans", "exact_match", "f1", "normalize_answer", "squad_scores"]
