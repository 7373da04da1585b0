"""SQuAD v1.1 and v2.0: extractive QA from the official JSON files or `rajpurkar/squad` / `rajpurkar/squad_v2`.

Local files sit under ``<root>/squad/`` with the official names (``train-v1.1.json``, ``dev-v1.1.json``,
``train-v2.0.json``, ``dev-v2.0.json``) and are flattened to the hub's schema (id, title, context, question,
answers {text, answer_start}), checking every question: an answer must be the context's text at its
answer_start (an error names the file and the question id), and in v1.1 every question has an answer.

Contexts longer than the window are split with a stride (the tokenizer's overflowing tokens); a training
window whose context does not hold the whole first answer points at [CLS] (the "no answer" position v2
learns). Evaluation keeps each window's offsets and post-processes start/end logits into answer text
(squad_eval.best_answers), scored as the official scripts score (squad_eval.squad_scores).

As HF's ``run_qa`` recipe: consecutive windows overlap by 128 tokens (`stride_for`; half the window when it
is shorter than 256), n-best 20, answers of at most 30 tokens, the default window 384 tokens
(`default_max_length`, the CLI's when --max-length is not given). Where tickettune deliberately differs:
windows are not padded to max_length (the collator pads each batch, and with ``group_by_length`` batches hold
windows of similar lengths: the time), `max_train_samples` is a seeded random subset over all articles (run_qa
takes the first N questions, i.e. a few articles), and a question too long to leave the stride room in its
window gets a smaller stride rather than a tokenizer panic (`question_strides`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, load_dataset
from torch import nn
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from ..training.device import to_device
from ..training.loop import unwrap
from ..training.precision import Precision
from .base import DataArgs, Task
from .data import check_max_length, data_root, seeded_loader, subset
from .squad_eval import best_answers, squad_scores

DOC_STRIDE = 128  # run_qa's overlap between consecutive windows (see `stride_for`)
N_BEST, MAX_ANSWER_TOKENS = 20, 30


@dataclass(frozen=True)
class SquadSpec:
    name: str
    v2: bool
    hub: str
    files: tuple[str, str]  # (train, dev) under <root>/squad


SPECS = (
    SquadSpec("squad", False, "rajpurkar/squad", ("train-v1.1.json", "dev-v1.1.json")),
    SquadSpec("squad_v2", True, "rajpurkar/squad_v2", ("train-v2.0.json", "dev-v2.0.json")),
)


def squad_file(spec: SquadSpec, split: str, root: str | os.PathLike | None) -> Path:
    name = spec.files[0 if split == "train" else 1]
    path = data_root(root) / "squad" / name
    if not path.is_file():
        raise FileNotFoundError(f"{spec.name} {split}: no file at {path}")
    return path


def read_squad_json(path: Path, v2: bool) -> Dataset:
    """The official JSON flattened to one row per question, every answer checked against its context."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a JSON file ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise ValueError(f"{path}: no 'data' list (the official SQuAD format)")
    rows = {"id": [], "title": [], "context": [], "question": [], "answers": []}
    for a, article in enumerate(doc["data"]):
        for p, para in enumerate(article.get("paragraphs", [])):
            context = para.get("context")
            if not isinstance(context, str) or not context:
                raise ValueError(f"{path}: article {a} paragraph {p} has no context")
            for qa in para.get("qas", []):
                qid, question = qa.get("id"), qa.get("question")
                where = f"{path}: question id {qid!r} (article {a}, paragraph {p})"
                if not qid or not isinstance(question, str) or not question.strip():
                    raise ValueError(f"{where}: needs an id and a question")
                answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                if not answers and not v2:
                    raise ValueError(f"{where}: no answer (SQuAD v1.1 questions all have one)")
                for ans in answers:
                    text, start = ans.get("text"), ans.get("answer_start")
                    if (
                        not isinstance(text, str)
                        or not isinstance(start, int)
                        or context[start : start + len(text)] != text
                    ):
                        raise ValueError(
                            f"{where}: answer {text!r} is not the context's text at answer_start {start!r}"
                        )
                rows["id"].append(str(qid))
                rows["title"].append(str(article.get("title", "")))
                rows["context"].append(context)
                rows["question"].append(question)
                rows["answers"].append(
                    {"text": [x["text"] for x in answers], "answer_start": [x["answer_start"] for x in answers]}
                )
    if not rows["id"]:
        raise ValueError(f"{path}: no questions")
    return Dataset.from_dict(rows)


def load_squad(
    spec: SquadSpec, split: str, root=None, max_samples: int | None = None, source: str = "local", seed: int = 0
) -> Dataset:
    if split not in ("train", "dev"):
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'dev'")
    if source == "local":
        ds = read_squad_json(squad_file(spec, split, root), spec.v2)
    elif source == "hub":
        ds = load_dataset(spec.hub, split="train" if split == "train" else "validation")
    else:
        raise ValueError(f"unknown source {source!r}; expected 'local' or 'hub'")
    return subset(ds, max_samples, seed)


def stride_for(max_length: int) -> int:
    """Tokens consecutive windows share: run_qa's 128, or half the window when that is shorter than 256."""
    return min(DOC_STRIDE, max_length // 2)


def question_strides(
    questions: list[str], ids: list[str], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> list[int]:
    """Each question's stride: `stride_for(max_length)`, less when a long question leaves the context so little
    room that windows would move on by less than a quarter of it (the tokenizer itself panics at stride >= the
    room; run_qa has no guard); a question that leaves no room is an error. Ordinary questions (room >= 171
    tokens at stride 128) keep run_qa's stride."""
    stride = stride_for(max_length)
    special = tokenizer.num_special_tokens_to_add(pair=True)
    lengths = [len(ids_) for ids_ in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    out = []
    for qid, n in zip(ids, lengths):
        room = max_length - special - n  # context tokens a window holds
        if room < 2:
            raise ValueError(
                f"question id {qid!r}: its {n} tokens leave no room for the context in a "
                f"{max_length}-token window; raise max_length"
            )
        out.append(min(stride, room - max(1, room // 4)))  # windows advance >= a quarter of their context
    return out


def _windows(batch: dict, tokenizer: PreTrainedTokenizerBase, max_length: int) -> dict[str, list]:
    """Every question's windows, question by question: the tokenizer's columns, offset_mapping, `sample` (the
    question's row in `batch`) and `sequence_ids` (0 question, 1 context, None special tokens)."""
    if tokenizer.padding_side != "right":
        raise ValueError("SQuAD windows assume a tokenizer that pads on the right")
    questions = [q.lstrip() for q in batch["question"]]
    groups: dict[int, list[int]] = {}  # stride -> the questions that use it (almost always one group)
    for j, stride in enumerate(question_strides(questions, batch["id"], tokenizer, max_length)):
        groups.setdefault(stride, []).append(j)
    per_question: list[list[dict]] = [[] for _ in questions]
    for stride, rows in groups.items():
        enc = tokenizer(
            [questions[j] for j in rows],
            [batch["context"][j] for j in rows],
            truncation="only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        keys = [k for k in enc if k != "overflow_to_sample_mapping"]
        for w, k in enumerate(enc["overflow_to_sample_mapping"]):
            per_question[rows[k]].append(
                {**{key: enc[key][w] for key in keys}, "sample": rows[k], "sequence_ids": enc.sequence_ids(w)}
            )
    windows = [w for ws in per_question for w in ws]
    return {key: [w[key] for w in windows] for key in (windows[0] if windows else {})}


def answer_span(offsets: list, sequence_ids: list, answers: dict) -> tuple[int, int]:
    """(start, end) token indices of the first answer in this window, or (0, 0) ([CLS]) when the window's
    context does not hold all of it, or there is none."""
    if not answers["text"]:
        return 0, 0
    lo = answers["answer_start"][0]
    hi = lo + len(answers["text"][0])
    ctx = [k for k, sid in enumerate(sequence_ids) if sid == 1]
    if not ctx or offsets[ctx[0]][0] > lo or offsets[ctx[-1]][1] < hi:
        return 0, 0
    return next(k for k in ctx if offsets[k][1] > lo), next(k for k in reversed(ctx) if offsets[k][0] < hi)


def train_features(ds: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> Dataset:
    """Windows with start_positions / end_positions (token indices; 0, the [CLS], when the window does not
    hold the whole first answer or there is none)."""
    check_max_length(tokenizer, max_length, 16)

    def encode(batch: dict) -> dict:
        enc = _windows(batch, tokenizer, max_length)
        spans = [
            answer_span(offs, seq, batch["answers"][j])
            for offs, seq, j in zip(enc.pop("offset_mapping"), enc.pop("sequence_ids"), enc.pop("sample"))
        ]
        return {**enc, "start_positions": [s for s, _ in spans], "end_positions": [e for _, e in spans]}

    return ds.map(encode, batched=True, remove_columns=ds.column_names, desc="SQuAD train windows")


def eval_features(ds: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> Dataset:
    """Windows with their example id and offsets (None outside the context), for post-processing."""
    check_max_length(tokenizer, max_length, 16)

    def encode(batch: dict) -> dict:
        enc = _windows(batch, tokenizer, max_length)
        enc["example_id"] = [batch["id"][j] for j in enc.pop("sample")]
        enc["offset_mapping"] = [
            [o if sid == 1 else None for o, sid in zip(offs, seq)]
            for offs, seq in zip(enc["offset_mapping"], enc.pop("sequence_ids"))
        ]
        return enc

    return ds.map(encode, batched=True, remove_columns=ds.column_names, desc="SQuAD eval windows")


@dataclass
class SquadEval:
    """What evaluation needs: the windows' loader, their ids and offsets, the contexts and gold answers."""

    loader: DataLoader
    example_ids: list[str]
    offsets: list
    contexts: dict[str, str]
    golds: dict[str, list[str]]


@torch.no_grad()
def qa_logits(model: nn.Module, loader, precision: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(start_logits, end_logits), fp32, padded with -inf to the longest window."""
    model = unwrap(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    amp = Precision.of(precision, device)
    starts, ends = [], []
    for batch in loader:
        with amp.autocast():
            out = model(**to_device(batch, device))
        starts += list(out.start_logits.float().cpu().numpy())
        ends += list(out.end_logits.float().cpu().numpy())
    model.train(was_training)
    width = max(len(s) for s in starts)
    pad = lambda rows: np.stack([np.pad(r, (0, width - len(r)), constant_values=-np.inf) for r in rows])  # noqa
    return pad(starts), pad(ends)


class SquadTask(Task):
    default_max_length = 384  # run_qa's: a question and most of a paragraph in one window
    loss_key = None  # dev windows keep offsets, not answer positions: no dev loss

    def __init__(self, spec: SquadSpec):
        self.spec, self.name = spec, spec.name

    @property
    def head(self) -> str:
        return "qa"

    @property
    def num_labels(self) -> int:
        return 2

    @property
    def main_metric(self) -> str:
        return "f1"

    def check(self, args: DataArgs) -> None:
        if args.source == "local":
            for split in ("train", "dev"):
                load_squad(self.spec, split, args.root)

    def train_loader(self, tokenizer: PreTrainedTokenizerBase, args: DataArgs) -> DataLoader:
        ds = load_squad(self.spec, "train", args.root, args.max_train_samples, args.source, args.seed)
        feats = train_features(ds, tokenizer, args.max_length)
        return seeded_loader(
            feats,
            DataCollatorWithPadding(tokenizer),
            args.batch_size,
            True,
            args.seed,
            args.num_workers,
            args.group_by_length,
        )

    def eval_data(self, tokenizer: PreTrainedTokenizerBase, args: DataArgs) -> SquadEval:
        ds = load_squad(self.spec, "dev", args.root, args.max_eval_samples, args.source, args.seed)
        feats = eval_features(ds, tokenizer, args.max_length)
        model_cols = [c for c in feats.column_names if c not in ("example_id", "offset_mapping")]
        loader = seeded_loader(
            feats.select_columns(model_cols),
            DataCollatorWithPadding(tokenizer),
            args.eval_batch_size,
            False,
            args.seed,
            0,
        )
        return SquadEval(
            loader,
            feats["example_id"],
            feats["offset_mapping"],
            dict(zip(ds["id"], ds["context"])),
            {qid: a["text"] for qid, a in zip(ds["id"], ds["answers"])},
        )

    def predictions(self, model: nn.Module, data: SquadEval, precision: str = "auto") -> dict[str, str]:
        start, end = qa_logits(model, data.loader, precision)
        return best_answers(
            start,
            end,
            data.example_ids,
            data.offsets,
            data.contexts,
            N_BEST,
            MAX_ANSWER_TOKENS,
            allow_empty=self.spec.v2,
        )

    def evaluate(self, model: nn.Module, data: SquadEval, precision: str = "auto") -> dict[str, float]:
        return squad_scores(self.predictions(model, data, precision), data.golds, self.spec.v2)

    def size(self, data) -> int:
        if isinstance(data, SquadEval):
            return len(data.golds)  # questions (each may span several windows)
        return super().size(data)  # a train loader: windows

    def info(self) -> dict:
        return {**super().info(), "version": "2.0" if self.spec.v2 else "1.1"}


def register_all(register) -> None:
    for spec in SPECS:
        register(spec.name, lambda spec=spec: SquadTask(spec))


__all__ = [
    "DOC_STRIDE",
    "SPECS",
    "SquadEval",
    "SquadSpec",
    "SquadTask",
    "answer_span",
    "eval_features",
    "load_squad",
    "qa_logits",
    "question_strides",
    "read_squad_json",
    "stride_for",
    "train_features",
]
