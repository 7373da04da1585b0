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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import ClassLabel, Dataset, Features, Value, load_dataset
from torch import nn
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from ..training.loop import predict
from .base import DataArgs, Task
from .data import as_tokenizer, check_max_length, data_root, line_error, read_tsv, seeded_loader, subset
from .metrics import classification_metrics, regression_metrics

GLUE_HUB = "nyu-mll/glue"


@dataclass(frozen=True)
class GlueSpec:
    """What a GLUE task needs. STS-B's main metric is Spearman correlation, the figure BERT (Devlin et al.,
    2019, Table 1) reports; MRPC and QQP report F1 (main) and accuracy; MNLI accuracy on matched (main) and
    mismatched dev."""

    name: str  # our name, also the hub config: "sst2", "mnli", ...
    head: str  # "classification" or "regression"
    num_labels: int  # classes; 1 for regression
    text_columns: tuple[str, ...]  # the hub's names: one sentence, or a pair fed to the tokenizer as (a, b)
    metrics: tuple[str, ...]
    main_metric: str
    folder: str  # local folder under <root>/glue: "SST-2", "MNLI", ...
    tsv_columns: tuple[str, ...]  # the local TSV's columns as GLUE writes them (train's, for MNLI)
    tsv_header: bool  # whether the TSV's first line names its columns (then the needed ones are found by name)
    label_column: str  # which TSV column holds the label or score
    label_names: tuple[str, ...] = ()  # ClassLabel names (as on the hub); empty for regression
    named_labels: bool = False  # the files may write labels as these names (else class indices only)
    file_text_columns: tuple[str, ...] = ()  # the TSV's names of text_columns, where they differ (MRPC, MNLI)
    score_range: tuple[float, float] | None = None  # regression targets must lie in it
    dev_splits: tuple[str, ...] = ("dev",)  # local dev file(s); several: metrics get a suffix each
    hub_dev_splits: tuple[str, ...] = ("validation",)

    @property
    def hub_config(self) -> str:
        return self.name

    @property
    def is_regression(self) -> bool:
        return self.head == "regression"

    @property
    def file_columns(self) -> tuple[str, ...]:
        return self.file_text_columns or self.text_columns

    @property
    def features(self) -> Features:
        """The schema of `load_glue`'s datasets (the hub's for this config)."""
        cols = {c: Value("string") for c in self.text_columns}
        label = Value("float32") if self.is_regression else ClassLabel(names=list(self.label_names))
        return Features({**cols, "label": label, "idx": Value("int32")})

    def suffix(self, split: str) -> str:
        """ "" for a task with one dev set; "_matched" / "_mismatched" for MNLI's."""
        return "" if len(self.dev_splits) == 1 else "_" + split.removeprefix("dev_")

    @property
    def main_key(self) -> str:
        return self.main_metric + self.suffix(self.dev_splits[0])


_NLI2 = ("entailment", "not_entailment")
_STSB_TSV = ("index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2", "score")
_MNLI_TSV = (
    "index",
    "promptID",
    "pairID",
    "genre",
    "sentence1_binary_parse",
    "sentence2_binary_parse",
    "sentence1_parse",
    "sentence2_parse",
    "sentence1",
    "sentence2",
    "label1",
    "gold_label",
)
_PAIR = ("sentence1", "sentence2")
SPECS: tuple[GlueSpec, ...] = (
    GlueSpec(
        "sst2",
        "classification",
        2,
        ("sentence",),
        ("accuracy",),
        "accuracy",
        "SST-2",
        ("sentence", "label"),
        True,
        "label",
        ("negative", "positive"),
    ),
    GlueSpec(
        "cola",
        "classification",
        2,
        ("sentence",),
        ("matthews_correlation", "accuracy"),
        "matthews_correlation",
        "CoLA",
        ("source", "label", "original_label", "sentence"),
        False,
        "label",
        ("unacceptable", "acceptable"),
    ),
    GlueSpec(
        "stsb",
        "regression",
        1,
        _PAIR,
        ("pearson", "spearmanr"),
        "spearmanr",
        "STS-B",
        _STSB_TSV,
        True,
        "score",
        score_range=(0.0, 5.0),
    ),
    GlueSpec(
        "mrpc",
        "classification",
        2,
        _PAIR,
        ("f1", "accuracy"),
        "f1",
        "MRPC",
        ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
        True,
        "Quality",
        ("not_equivalent", "equivalent"),
        file_text_columns=("#1 String", "#2 String"),
    ),
    GlueSpec(
        "qqp",
        "classification",
        2,
        ("question1", "question2"),
        ("f1", "accuracy"),
        "f1",
        "QQP",
        ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
        True,
        "is_duplicate",
        ("not_duplicate", "duplicate"),
    ),
    GlueSpec(
        "mnli",
        "classification",
        3,
        ("premise", "hypothesis"),
        ("accuracy",),
        "accuracy",
        "MNLI",
        _MNLI_TSV,
        True,
        "gold_label",
        ("entailment", "neutral", "contradiction"),
        True,
        _PAIR,
        dev_splits=("dev_matched", "dev_mismatched"),
        hub_dev_splits=("validation_matched", "validation_mismatched"),
    ),
    GlueSpec(
        "qnli",
        "classification",
        2,
        ("question", "sentence"),
        ("accuracy",),
        "accuracy",
        "QNLI",
        ("index", "question", "sentence", "label"),
        True,
        "label",
        _NLI2,
        True,
    ),
    GlueSpec(
        "rte",
        "classification",
        2,
        _PAIR,
        ("accuracy",),
        "accuracy",
        "RTE",
        ("index", *_PAIR, "label"),
        True,
        "label",
        _NLI2,
        True,
    ),
    GlueSpec(
        "wnli",
        "classification",
        2,
        _PAIR,
        ("accuracy",),
        "accuracy",
        "WNLI",
        ("index", *_PAIR, "label"),
        True,
        "label",
        ("not_entailment", "entailment"),
        True,
    ),
)
TASKS: dict[str, GlueSpec] = {s.name: s for s in SPECS}
TaskSpec = GlueSpec  # the name data.py used


def task_spec(task: str | GlueSpec) -> GlueSpec:
    """The spec of "sst2" / "SST-2" / "sst-2", "mnli", "sts_b" ...; a GlueSpec passes through."""
    if isinstance(task, GlueSpec):
        return task
    key = str(task).lower().replace("-", "").replace("_", "")
    if key not in TASKS:
        raise ValueError(f"unknown GLUE task {task!r}; expected one of {sorted(TASKS)}")
    return TASKS[key]


def split_name(spec: GlueSpec, split: str) -> str:
    """Our local split name: "train" or one of spec.dev_splits ("dev"/"validation" mean the first)."""
    if split == "test" or split.startswith("test_"):
        raise ValueError("GLUE test labels are not public; use split='train' or split='dev'")
    if split in ("dev", "validation"):
        return spec.dev_splits[0]
    if split in spec.hub_dev_splits:
        return spec.dev_splits[spec.hub_dev_splits.index(split)]
    if split == "train" or split in spec.dev_splits:
        return split
    raise ValueError(
        f"unknown split {split!r} of {spec.name}; expected 'train' or 'dev' ('validation' is an alias "
        f"of 'dev'){', or one of ' + str(list(spec.dev_splits)) if len(spec.dev_splits) > 1 else ''}"
    )


def glue_file(task: str | GlueSpec, split: str = "train", root: str | os.PathLike | None = None) -> Path:
    """<root>/glue/<folder>/<split>.tsv (or <root>/<folder>/<split>.tsv, a GLUE download script's layout)."""
    spec = task_spec(task)
    split = split_name(spec, split)
    base = data_root(root)
    tried = [base / "glue" / spec.folder / f"{split}.tsv", base / spec.folder / f"{split}.tsv"]
    for path in tried:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{spec.name} {split}: no file at {tried[0]} (nor {tried[1]})")


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
) -> DataLoader:
    """Batches of input_ids / token_type_ids / attention_mask / labels, padded to the longest in each batch.

    `shuffle` defaults to True for train and False for dev; the order is seeded by `seed` (a torch.Generator), as
    is the `max_samples` subset. `group_by_length` (train) puts sentences of similar length in one batch."""
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
            )
            for split in self.spec.dev_splits
        }

    def evaluate(self, model: nn.Module, data: dict[str, DataLoader], precision: str = "auto") -> dict[str, float]:
        out = {}
        for split, loader in data.items():
            logits, labels = predict(model, loader, precision)
            suffix = self.spec.suffix(split)
            out.update({k + suffix: v for k, v in glue_metrics(self.spec, logits, labels).items()})
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
