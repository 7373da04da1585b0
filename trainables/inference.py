"""Applying a model to rows: what head a model has (read from its files, nothing loaded), the names of its
labels, and length-sorted batched forward passes whose results come back in the rows' order.

A model is anything `model.load_model` takes. A ticket's ``ticket.json`` records its head, its label count
and the task it was trained on (with the label names: a GLUE task's as the hub names them, own data's as
the train file wrote them); any other model directory or hub id is described by its ``config.json``:
the class in ``architectures`` gives the head (``...ForSequenceClassification``, ``...ForQuestionAnswering``,
``...ForMaskedLM``; a bare encoder has none) and ``id2label`` the label names. QA rows go through the SQuAD
task's windowing (tasks/squad.py: `eval_features`, `qa_logits`) and post-processing (squad_eval.best_spans).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedConfig, PreTrainedTokenizerBase

from .model.weights import TICKET_JSON
from .tasks.sampler import length_order
from .training.precision import Precision

SERVED_HEADS = ("classification", "regression", "qa")
DEFAULT_MAX_LENGTH = {"qa": 384}  # the SQuAD convention; classification and regression: 128
_SUFFIXES = {"ForSequenceClassification": "classification", "ForQuestionAnswering": "qa", "ForMaskedLM": "mlm"}
_DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")


@dataclass
class ModelFacts:
    """What a model is, from its files only: read before anything is loaded or computed."""

    source: str  # as the user named it
    head: str | None  # classification | regression | qa | mlm | None (a bare encoder)
    num_labels: int
    labels: list[str] = field(default_factory=list)  # class names, class id = position
    task: dict = field(default_factory=dict)  # a ticket's task record (tasks.Task.info)
    max_length: int | None = None  # what it was trained at, where recorded
    max_positions: int | None = None
    is_ticket: bool = False
    architecture: str = ""


def _config_dict(source: str) -> dict:
    from .model.build import model_path

    config, _ = PreTrainedConfig.get_config_dict(model_path(source))
    return config


def _config_head(config: dict) -> tuple[str | None, str]:
    arch = next(iter(config.get("architectures") or []), "")
    head = next((h for suffix, h in _SUFFIXES.items() if arch.endswith(suffix)), None)
    if head == "classification" and (
        config.get("problem_type") == "regression"
        or int(config.get("num_labels", len(config.get("id2label") or {}) or 2)) == 1
    ):
        head = "regression"
    return head, arch


def _config_labels(config: dict, n: int) -> list[str]:
    id2label = {int(k): str(v) for k, v in (config.get("id2label") or {}).items()}
    names = [id2label.get(i, "") for i in range(n)]
    if all(names) and not all(_DEFAULT_LABEL.match(x) for x in names):
        return names
    return [str(i) for i in range(n)]


def model_facts(source: str) -> ModelFacts:
    """Head, labels and recorded lengths of `source` (ticket dir, model dir, alias, cached hub id)."""
    path = Path(source).expanduser()
    config = _config_dict(source)
    positions = config.get("max_position_embeddings")
    if (path / TICKET_JSON).is_file():
        from .ticket.format import read_info

        info = read_info(path)
        task = info.get("task") if isinstance(info.get("task"), dict) else {}
        head, n = info["head"], int(info["num_labels"])
        labels = [str(x) for x in task.get("labels") or []]
        if len(labels) != n:
            labels = _config_labels(config, n)
        return ModelFacts(
            source,
            head,
            n,
            labels if head == "classification" else [],
            task,
            (info.get("flow") or {}).get("max_length"),
            positions,
            True,
            "ticket",
        )
    head, arch = _config_head(config)
    n = (
        2
        if head == "qa"
        else 1
        if head == "regression"
        else int(config.get("num_labels") or len(config.get("id2label") or {}) or 2)
    )
    labels = _config_labels(config, n) if head == "classification" else []
    return ModelFacts(source, head, n, labels, {}, None, positions, False, arch)


def load_served(facts: ModelFacts) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """The model in eval mode on the default device (the GPU where torch sees one), with its tokenizer."""
    from .model.build import load_model
    from .training.device import place

    if facts.is_ticket:
        from .ticket.format import load_ticket

        model, tokenizer, _ = load_ticket(facts.source)
    else:
        model, tokenizer = load_model(facts.source, head=facts.head, num_labels=facts.num_labels)
    return model.to(place("auto").device).eval(), tokenizer


def sorted_batches(
    features: dict[str, list], tokenizer: PreTrainedTokenizerBase, batch_size: int
) -> tuple[np.ndarray, list[dict[str, torch.Tensor]]]:
    """(order, padded batches in that order) of tokenised rows (lists of token ids per model input)."""
    order = length_order([len(x) for x in features["input_ids"]])
    names = [k for k in tokenizer.model_input_names if k in features]
    batches = []
    for i in range(0, len(order), batch_size):
        rows = [{k: features[k][j] for k in names} for j in order[i : i + batch_size]]
        batches.append(dict(tokenizer.pad(rows, return_tensors="pt")))
    return order, batches


def restore(order: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Values computed in `order` put back in row order."""
    out = np.empty_like(values)
    out[order] = values
    return out


@torch.no_grad()
def forward_logits(model: nn.Module, batches: Iterable[dict], precision: str = "auto") -> np.ndarray:
    """The classifier's logits (fp32) over the batches, in their order."""
    device = next(model.parameters()).device
    amp = Precision.of(precision, device)
    out = []
    for batch in batches:
        with amp.autocast():
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        out.append(logits.float().cpu().numpy())
    return np.concatenate(out)


def classify(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[Sequence[str]],
    batch_size: int,
    max_length: int,
    precision: str = "auto",
    progress=lambda it, total: it,
) -> np.ndarray:
    """Logits (rows x labels) for one text column or a pair; `texts` holds one list per column."""
    enc = tokenizer(*texts, truncation=True, max_length=max_length)
    order, batches = sorted_batches(dict(enc), tokenizer, batch_size)
    return restore(order, forward_logits(model, progress(batches, len(batches)), precision))


def label_scores(logits: np.ndarray, head: str, labels: Sequence[str]) -> tuple[list, list[float]]:
    """(label name per row, its probability) for a classifier; (None, the predicted value) for regression."""
    if head == "regression":
        return [None] * len(logits), logits[:, 0].astype(float).tolist()
    probs = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
    best = probs.argmax(-1)
    return [labels[i] for i in best], probs[np.arange(len(best)), best].astype(float).tolist()


def answer(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    contexts: Sequence[str],
    batch_size: int,
    max_length: int,
    precision: str = "auto",
    allow_empty: bool = False,
    progress=lambda it, total: it,
) -> list[tuple[int, int, float]]:
    """(answer_start, answer_end, score) per row: character offsets into its context; score is the span's
    start + end logit. The SQuAD task's windows and post-processing, windows batched longest first."""
    from datasets import Dataset

    from .tasks.squad import MAX_ANSWER_TOKENS, N_BEST, eval_features, qa_logits
    from .tasks.squad_eval import best_spans

    ids = [str(i) for i in range(len(questions))]
    ds = Dataset.from_dict({"id": ids, "question": list(questions), "context": list(contexts)})
    feats = eval_features(ds, tokenizer, max_length)
    cols = {k: feats[k] for k in feats.column_names if k not in ("example_id", "offset_mapping")}
    order, batches = sorted_batches(cols, tokenizer, batch_size)
    start, end = qa_logits(model, progress(batches, len(batches)), precision)
    example, offsets = feats["example_id"], feats["offset_mapping"]
    spans = best_spans(
        start, end, [example[i] for i in order], [offsets[i] for i in order], N_BEST, MAX_ANSWER_TOKENS, allow_empty
    )
    return [spans[i] for i in ids]


__all__ = [
    "DEFAULT_MAX_LENGTH",
    "ModelFacts",
    "SERVED_HEADS",
    "answer",
    "classify",
    "forward_logits",
    "label_scores",
    "length_order",
    "load_served",
    "model_facts",
    "restore",
    "sorted_batches",
]
