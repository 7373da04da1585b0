"""The nine GLUE tasks as data: each a `GlueSpec` row (its files' columns, which are the text and the label, how
the labels may be written, its metrics as GLUE reports them), and where a split's file lives."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from datasets import ClassLabel, Features, Value

from .data import data_root

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
