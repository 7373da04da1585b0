"""The nine GLUE tasks, from the original TSV layout (as the GLUE download script writes it) or `nyu-mll/glue`.

Each task is a `GlueSpec` row: its files' columns, which of them are the text and the label, what the labels
may be written as, its metrics as GLUE reports them. The files' quirks are read generically: a header names
the columns (MRPC's starts with a UTF-8 BOM; MNLI's train and dev headers differ, `label1..label5` on dev),
CoLA has none; labels are class indices or, where the files write them so (RTE, QNLI, MNLI, WNLI), the hub's
class names; quotes inside sentences are text. A loaded split has the hub's schema: the text column(s) under
the hub's names, ``label`` (ClassLabel, or float32 for STS-B) and ``idx`` (int32, the row's position in the
file), so local and hub data are interchangeable. A bad row raises ValueError naming file and line.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, load_dataset
from torch import nn
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from ..training.loop import predict
from .base import DataArgs, Task
from .data import as_tokenizer, check_max_length, line_error, read_tsv, seeded_loader, subset
from .glue_specs import GLUE_HUB, SPECS, TASKS, GlueSpec, TaskSpec, glue_file, split_name, task_spec
from .metrics import classification_metrics, dev_loss, regression_metrics

_NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"


def first_false(mask: pa.ChunkedArray | pa.Array) -> int | None:
    mask = pc.fill_null(mask, False)
    if pc.all(mask).as_py():
        return None
    return int(pc.index(mask, False).as_py())


def _parse_labels(path: Path, spec: GlueSpec, column: pa.ChunkedArray, first_line: int) -> np.ndarray:
    """Label strings -> int64 class ids or float32 scores; the first bad one raises with its line."""
    column = pc.utf8_rtrim(pc.fill_null(column, ""), characters="\r")
    if not spec.is_regression:
        keys = [str(i) for i in range(spec.num_labels)] + (list(spec.label_names) if spec.named_labels else [])
        where = pc.index_in(column, value_set=pa.array(keys))
        bad = first_false(pc.is_valid(where))
        if bad is not None:
            expected = f"a class index in 0..{spec.num_labels - 1}"
            if spec.named_labels:
                expected = f"one of {list(spec.label_names)} or " + expected
            raise line_error(path, first_line + bad, f"label {column[bad].as_py()!r} is not {expected}")
        return where.to_numpy().astype(np.int64) % spec.num_labels  # a name's position = its class id
    bad = first_false(pc.match_substring_regex(pc.utf8_trim_whitespace(column), _NUMBER))
    if bad is not None:
        raise line_error(path, first_line + bad, f"score {column[bad].as_py()!r} is not a number")
    scores = pc.cast(pc.utf8_trim_whitespace(column), pa.float64()).to_numpy()
    lo, hi = spec.score_range
    outside = np.flatnonzero((scores < lo) | (scores > hi))
    if len(outside):
        raise line_error(path, first_line + int(outside[0]), f"score {scores[outside[0]]} is outside [{lo}, {hi}]")
    return scores.astype(np.float32)


def _read_glue_tsv(path: Path, spec: GlueSpec) -> Dataset:
    what = f"{spec.name}: " + ("as many as the header on line 1" if spec.tsv_header else ", ".join(spec.tsv_columns))
    keep = [*spec.file_columns, spec.label_column]
    raw = read_tsv(path, None if spec.tsv_header else spec.tsv_columns, keep, what)
    labels = _parse_labels(path, spec, raw.data.column(spec.label_column), 2 if spec.tsv_header else 1)
    features = spec.features
    ds = raw.select_columns(list(spec.file_columns))
    for file_name, hub_name in zip(spec.file_columns, spec.text_columns):
        if file_name != hub_name:
            ds = ds.rename_column(file_name, hub_name)
    ds = ds.add_column("label", labels, feature=features["label"])
    return ds.add_column("idx", np.arange(len(ds), dtype=np.int32), feature=features["idx"])


def load_glue(
    task: str | GlueSpec,
    split: str = "train",
    root: str | os.PathLike | None = None,
    max_samples: int | None = None,
    source: str = "local",
    seed: int = 0,
) -> Dataset:
    """One GLUE split: text column(s), ``label`` (class id, or float32 score for STS-B) and ``idx``.

    `split` is "train" or "dev" ("validation" also works; MNLI: "dev_matched" / "dev_mismatched", "dev" is
    matched). `source="local"` reads the TSV under `data_root(root)`; `source="hub"` downloads ``nyu-mll/glue``
    (needs network or a warm hub cache; `root` is ignored). `max_samples` keeps a seeded random subset."""
    spec = task_spec(task)
    split = split_name(spec, split)
    if source == "local":
        ds = _read_glue_tsv(glue_file(spec, split, root), spec)
    elif source == "hub":
        hub_split = "train" if split == "train" else spec.hub_dev_splits[spec.dev_splits.index(split)]
        ds = load_dataset(GLUE_HUB, spec.hub_config, split=hub_split)
        ds = ds.select_columns([*spec.text_columns, "label", "idx"])
    else:
        raise ValueError(f"unknown source {source!r}; expected 'local' or 'hub'")
    return subset(ds, max_samples, seed)


def tokenize_glue(
    ds: Dataset, tokenizer: PreTrainedTokenizerBase | str, task: str | GlueSpec, max_length: int = 128
) -> Dataset:
    """Tokenise (truncating, not padding) with the model's tokenizer: input_ids, token_type_ids, attention_mask,
    labels (class id, or float32 score). Pad per batch with `DataCollatorWithPadding` (as `glue_loader` does)."""
    spec, tokenizer = task_spec(task), as_tokenizer(tokenizer)
    return tokenize_pairs(ds, tokenizer, spec.text_columns, max_length, spec.name)


def tokenize_pairs(
    ds: Dataset, tokenizer: PreTrainedTokenizerBase, cols: tuple[str, ...], max_length: int, name: str
) -> Dataset:
    """One text column or a pair (a, b), truncated to max_length; ``label`` becomes ``labels``."""
    check_max_length(tokenizer, max_length, 4)
    missing = [c for c in (*cols, "label") if c not in ds.column_names]
    if missing:
        raise ValueError(f"{name}: dataset lacks column(s) {missing}; it has {ds.column_names}")

    def encode(batch: dict) -> dict:
        return tokenizer(*(batch[c] for c in cols), truncation=True, max_length=max_length)

    drop = [c for c in ds.column_names if c != "label"]
    out = ds.map(encode, batched=True, remove_columns=drop, desc=f"tokenizing {name}")
    return out.rename_column("label", "labels")


def glue_loader(
    task: str | GlueSpec,
    split: str,
    tokenizer: PreTrainedTokenizerBase | str,
    batch_size: int = 32,
    max_length: int = 128,
    max_samples: int | None = None,
    shuffle: bool | None = None,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    source: str = "local",
    num_workers: int = 0,
    group_by_length: bool = False,
    pad_to_multiple_of: int | None = None,
    sort_by_length: bool = False,
) -> DataLoader:
    """Batches of input_ids / token_type_ids / attention_mask / labels, padded to the longest in each batch.

    `shuffle` defaults to True for train and False for dev; the order is seeded by `seed` (a torch.Generator), as
    is the `max_samples` subset. `group_by_length` (train) puts sentences of similar length in one batch;
    `sort_by_length` (unshuffled) yields the rows longest first."""
    tokenizer = as_tokenizer(tokenizer)
    ds = load_glue(task, split, root=root, max_samples=max_samples, source=source, seed=seed)
    ds = tokenize_glue(ds, tokenizer, task, max_length=max_length)
    if shuffle is None:
        shuffle = split == "train"
    return seeded_loader(
        ds,
        DataCollatorWithPadding(tokenizer),
        batch_size,
        shuffle,
        seed,
        num_workers,
        group_by_length,
        pad_to_multiple_of,
        sort_by_length,
    )


def glue_metrics(task: str | GlueSpec, predictions, labels) -> dict[str, float]:
    """The task's metrics (`GlueSpec.metrics`) as plain floats, e.g. {"f1": .., "accuracy": ..}."""
    spec = task_spec(task)
    if spec.is_regression:
        return regression_metrics(spec.metrics, predictions, labels, spec.name)
    return classification_metrics(spec.metrics, spec.num_labels, predictions, labels, spec.name)


class GlueTask(Task):
    """A GLUE task: train on train.tsv, evaluate on each dev set (MNLI: matched and mismatched)."""

    def __init__(self, spec: GlueSpec):
        self.spec, self.name = spec, spec.name

    @property
    def head(self) -> str:
        return self.spec.head

    @property
    def num_labels(self) -> int:
        return self.spec.num_labels

    @property
    def main_metric(self) -> str:
        return self.spec.main_key

    @property
    def loss_key(self) -> str:
        return "loss" + self.spec.suffix(self.spec.dev_splits[0])  # the dev set main_metric is read on

    def check(self, args: DataArgs) -> None:
        if args.source == "local":
            for split in ("train", *self.spec.dev_splits):
                load_glue(self.spec, split, root=args.root)

    def train_loader(self, tokenizer: PreTrainedTokenizerBase, args: DataArgs) -> DataLoader:
        return glue_loader(
            self.spec,
            "train",
            tokenizer,
            args.batch_size,
            args.max_length,
            args.max_train_samples,
            True,
            args.seed,
            args.root,
            args.source,
            args.num_workers,
            args.group_by_length,
            args.pad_to_multiple_of,
        )

    def eval_data(self, tokenizer: PreTrainedTokenizerBase, args: DataArgs) -> dict[str, DataLoader]:
        return {
            split: glue_loader(
                self.spec,
                split,
                tokenizer,
                args.eval_batch_size,
                args.max_length,
                args.max_eval_samples,
                False,
                args.seed,
                args.root,
                args.source,
                sort_by_length=True,
            )
            for split in self.spec.dev_splits
        }

    def evaluate(self, model: nn.Module, data: dict[str, DataLoader], precision: str = "auto") -> dict[str, float]:
        out = {}
        for split, loader in data.items():
            logits, labels = predict(model, loader, precision)
            suffix = self.spec.suffix(split)
            loss = dev_loss(logits, labels, self.spec.is_regression, self.name)
            scores = {**glue_metrics(self.spec, logits, labels), "loss": loss}
            out.update({k + suffix: v for k, v in scores.items()})
        return out

    def info(self) -> dict:
        return {**super().info(), "labels": list(self.spec.label_names)}


def register_all(register) -> None:
    for spec in SPECS:
        register(spec.name, lambda spec=spec: GlueTask(spec))


__all__ = [
    "GLUE_HUB",
    "SPECS",
    "TASKS",
    "GlueSpec",
    "GlueTask",
    "TaskSpec",
    "glue_file",
    "glue_loader",
    "glue_metrics",
    "load_glue",
    "task_spec",
    "tokenize_glue",
    "tokenize_pairs",
]
