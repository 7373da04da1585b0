"""Classification or regression on the user's own table: CSV, TSV, JSON lines or parquet.

The conventions of Hugging Face's run_glue.py: a train and a validation file, one or two text columns (a pair
goes to the tokenizer as (a, b)), a label column. Labels are strings or integers (classes: the sorted set of
train's labels, class id = position in it, recorded in the ticket) or floats (regression; `regression=True`
forces it, False forbids it). Every problem (missing file or column, empty file, a blank text or label, a
validation label train never had) raises naming the file, the column and the line before anything is
tokenised. Lines count as in the file: a CSV/TSV header is line 1; a JSON lines file's first row is line 1;
parquet has rows, not lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from datasets import ClassLabel, Dataset, Features, Value
from torch import nn
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from ..training.loop import predict
from .base import DataArgs, Task
from .config_keys import unknown_keys
from .data import seeded_loader, subset
from .glue import tokenize_pairs
from .metrics import classification_metrics, dev_loss, regression_metrics

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
_INT = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
CLASS_METRICS = ("accuracy", "macro_f1")
REGRESSION_METRICS = ("pearson", "spearmanr")


@dataclass(frozen=True)
class TableConfig:
    train_file: str
    validation_file: str
    text_columns: tuple[str, ...] = ("text",)
    label_column: str = "label"
    regression: bool | None = None  # None: regression when the labels are non-integer numbers
    name: str = "own"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TableConfig":
        unknown, known = unknown_keys(cls, d)
        if unknown:
            raise ValueError(f"unknown own-data task keys {unknown}; expected some of {known}")
        missing = [k for k in ("train_file", "validation_file") if not d.get(k)]
        if missing:
            raise ValueError(f"own-data task needs {missing} (files: .csv, .tsv, .jsonl or .parquet)")
        d = dict(d)
        cols = d.get("text_columns", ("text",))
        cols = tuple(c.strip() for c in cols.split(",")) if isinstance(cols, str) else tuple(cols)
        if not 1 <= len(cols) <= 2 or not all(cols):
            raise ValueError(f"text_columns={d.get('text_columns')!r}: give one column or a pair (a,b)")
        d["text_columns"] = cols
        return cls(**d)


def _where(path: Path, fmt: str, row: int) -> str:
    """ "<file>, line N" (CSV/TSV: header is line 1; JSON lines: row 0 is line 1) or "<file>, row N"."""
    if fmt == "parquet":
        return f"{path}, row {row + 1}"
    return f"{path}, line {row + (2 if fmt in ('csv', 'tsv') else 1)}"


def read_table(path_text: str, what: str) -> tuple[pd.DataFrame, Path, str]:
    """The file as a DataFrame (CSV/TSV cells as strings, nothing turned into NaN), its path and format."""
    path = Path(path_text).expanduser()
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{what} {str(path)!r}: unknown format {path.suffix!r}; expected one of {sorted(FORMATS)}")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} not found")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: file is empty")
    try:
        if fmt in ("csv", "tsv"):
            df = pd.read_csv(
                path,
                sep="," if fmt == "csv" else "\t",
                dtype=str,
                keep_default_na=False,
                na_values=[],
                encoding="utf-8-sig",
            )
        elif fmt == "jsonl":
            df = pd.read_json(path, lines=True, dtype=False)
        else:
            df = pd.read_parquet(path)
    except (ValueError, pd.errors.ParserError, OSError) as e:
        raise ValueError(f"{path}: cannot be read as {fmt}: {e}") from None
    if len(df) == 0:
        raise ValueError(f"{path}: no data rows")
    return df, path, fmt


def _column(df: pd.DataFrame, path: Path, column: str, role: str) -> pd.Series:
    if column not in df.columns:
        raise ValueError(f"{path}: no {role} column {column!r}; it has {[str(c) for c in df.columns]}")
    return df[column]


def _blank(series: pd.Series) -> np.ndarray:
    return (series.isna() | (series.astype(str).str.strip() == "")).to_numpy()


def _texts(df: pd.DataFrame, path: Path, fmt: str, cols: tuple[str, ...]) -> dict[str, list[str]]:
    out = {}
    for c in cols:
        s = _column(df, path, c, "text")
        bad = np.flatnonzero(s.isna().to_numpy())
        if len(bad):
            raise ValueError(f"{_where(path, fmt, int(bad[0]))}: column {c!r} has no text")
        out[c] = s.astype(str).tolist()
    return out


def _labels(df: pd.DataFrame, path: Path, fmt: str, column: str) -> pd.Series:
    s = _column(df, path, column, "label")
    bad = np.flatnonzero(_blank(s))
    if len(bad):
        raise ValueError(f"{_where(path, fmt, int(bad[0]))}: column {column!r} has no label")
    return s


def _kind(labels: pd.Series) -> str:
    """ "int", "float" or "str", from the values (CSV/TSV cells are strings: their text decides)."""
    if pd.api.types.is_bool_dtype(labels):
        return "str"
    if pd.api.types.is_integer_dtype(labels):
        return "int"
    if pd.api.types.is_float_dtype(labels):
        return "float"
    text = labels.astype(str).str.strip()
    if text.str.fullmatch(_INT.pattern).all():
        return "int"
    if text.str.fullmatch(_NUMBER.pattern).all():
        return "float"
    return "str"


def _names(labels: pd.Series, kind: str) -> list[str]:
    if kind == "int":
        return [str(v) for v in sorted({int(str(v).strip()) for v in labels})]
    return sorted({str(v).strip() for v in labels})


def _key(v: Any, kind: str) -> str:
    return str(int(str(v).strip())) if kind == "int" else str(v).strip()


class TableTask(Task):
    """The user's labelled table; the label set (or regression) is fixed by the train file."""

    def __init__(self, cfg: TableConfig):
        self.cfg, self.name = cfg, cfg.name
        self._read: dict[str, Dataset] | None = None
        self.regression: bool | None = None
        self.labels: list[str] = []

    def problems(self) -> list[str]:
        out = []
        for role in ("train_file", "validation_file"):
            p = Path(getattr(self.cfg, role)).expanduser()
            if p.suffix.lower() not in FORMATS:
                out.append(
                    f"task {self.name!r}: {role}={str(p)!r} has an unknown format; expected one of {sorted(FORMATS)}"
                )
            elif not p.is_file():
                out.append(f"task {self.name!r}: {role}={str(p)!r} not found")
        return out

    def _load(self) -> dict[str, Dataset]:
        if self._read is not None:
            return self._read
        cols, label = self.cfg.text_columns, self.cfg.label_column
        train, train_path, train_fmt = read_table(self.cfg.train_file, "train file")
        dev, dev_path, dev_fmt = read_table(self.cfg.validation_file, "validation file")
        texts = {"train": _texts(train, train_path, train_fmt, cols), "dev": _texts(dev, dev_path, dev_fmt, cols)}
        y_train = _labels(train, train_path, train_fmt, label)
        y_dev = _labels(dev, dev_path, dev_fmt, label)
        kind = _kind(y_train)
        regression = kind == "float" if self.cfg.regression is None else self.cfg.regression
        if regression:
            ids = {"train": self._scores(y_train, train_path, train_fmt), "dev": self._scores(y_dev, dev_path, dev_fmt)}
            feature = Value("float32")
        else:
            if self.cfg.regression is False and kind == "float":
                kind = "str"
            names = _names(y_train, kind)
            if len(names) < 2:
                raise ValueError(
                    f"{train_path}: column {label!r} has a single label {names}; classification needs two or more"
                )
            ids = {
                "train": self._classes(y_train, names, kind, train_path, train_fmt),
                "dev": self._classes(y_dev, names, kind, dev_path, dev_fmt),
            }
            self.labels, feature = names, ClassLabel(names=names)
        features = Features({**{c: Value("string") for c in cols}, "label": feature})
        self.regression = regression
        self._read = {
            split: Dataset.from_dict({**texts[split], "label": ids[split]}, features=features)
            for split in ("train", "dev")
        }
        return self._read

    def _scores(self, labels: pd.Series, path: Path, fmt: str) -> list[float]:
        text = labels.astype(str).str.strip()
        bad = np.flatnonzero(~text.str.fullmatch(_NUMBER.pattern).to_numpy())
        if len(bad):
            raise ValueError(
                f"{_where(path, fmt, int(bad[0]))}: label {labels.iloc[bad[0]]!r} in column "
                f"{self.cfg.label_column!r} is not a number (regression)"
            )
        return text.astype(float).tolist()

    def _classes(self, labels: pd.Series, names: list[str], kind: str, path: Path, fmt: str) -> list[int]:
        index = {n: i for i, n in enumerate(names)}
        out = []
        for row, v in enumerate(labels):
            try:
                out.append(index[_key(v, kind)])
            except (KeyError, ValueError):
                raise ValueError(
                    f"{_where(path, fmt, row)}: label {v!r} in column {self.cfg.label_column!r} is "
                    f"not one of train's labels {names}"
                ) from None
        return out

    @property
    def head(self) -> str:
        self._load()
        return "regression" if self.regression else "classification"

    @property
    def num_labels(self) -> int:
        self._load()
        return 1 if self.regression else len(self.labels)

    @property
    def metrics(self) -> tuple[str, ...]:
        return REGRESSION_METRICS if self.head == "regression" else CLASS_METRICS

    @property
    def main_metric(self) -> str:
        return self.metrics[-1] if self.head == "regression" else self.metrics[0]

    def check(self, args: DataArgs) -> None:
        self._load()

    def _loader(self, split: str, tokenizer, args: DataArgs, batch: int, samples: int | None, shuffle: bool):
        ds = subset(self._load()[split], samples, args.seed)
        ds = tokenize_pairs(ds, tokenizer, self.cfg.text_columns, args.max_length, self.name)
        return seeded_loader(
            ds,
            DataCollatorWithPadding(tokenizer),
            batch,
            shuffle,
            args.seed,
            args.num_workers,
            args.group_by_length,
            args.pad_to_multiple_of if shuffle else None,
            sort_by_length=not shuffle,
        )

    def train_loader(self, tokenizer: PreTrainedTokenizerBase, args: DataArgs) -> DataLoader:
        return self._loader("train", tokenizer, args, args.batch_size, args.max_train_samples, True)

    def eval_data(self, tokenizer: PreTrainedTokenizerBase, args: DataArgs) -> DataLoader:
        return self._loader("dev", tokenizer, args, args.eval_batch_size, args.max_eval_samples, False)

    def evaluate(self, model: nn.Module, data: DataLoader, precision: str = "auto") -> dict[str, float]:
        logits, labels = predict(model, data, precision)
        regression = self.head == "regression"
        if regression:
            scores = regression_metrics(self.metrics, logits, labels, self.name)
        else:
            scores = classification_metrics(self.metrics, self.num_labels, logits, labels, self.name)
        return {**scores, "loss": dev_loss(logits, labels, regression, self.name)}

    def info(self) -> dict:
        return {
            **super().info(),
            "labels": self.labels,
            "train_file": str(self.cfg.train_file),
            "validation_file": str(self.cfg.validation_file),
            "text_columns": list(self.cfg.text_columns),
            "label_column": self.cfg.label_column,
        }


__all__ = ["FORMATS", "TableConfig", "TableTask", "read_table"]
