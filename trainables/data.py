"""GLUE (SST-2, CoLA, STS-B) and WikiText-2 through Hugging Face `datasets`, ready for BERT.

Where the data lives (`data_root`): an explicit argument, else ``$TICKETTUNE_DATA``, else ``../shared/data``
from the current directory, else ``../shared/data`` beside this checkout. The folder holds GLUE in its original
TSV layout (``glue/SST-2/train.tsv`` ...) and WikiText-2 text files; ``source="hub"`` reads the same data from
the Hugging Face hub instead (``nyu-mll/glue``, ``Salesforce/wikitext``) for users who are online.

Local GLUE files are read by the ``csv`` builder with quoting off (STS-B sentences contain quotes) and every
column as a string, then checked: a wrong column count, a label that is not a class index, or a score that is
not a number in [0, 5] raises ValueError naming the file and its 1-based line. The checks are vectorised
(NumPy over the raw bytes, pyarrow.compute over the label column): 67k SST-2 rows check in milliseconds.
A loaded split has the hub's schema: the text column(s), ``label`` (ClassLabel, or float32 for STS-B) and
``idx`` (int32, the row's position in the file), so local and hub data are interchangeable.

Subsets (``max_samples``) are seeded: the first N of a seeded permutation of the rows, put back in file order.
Subsets of one seed nest (N=500 is inside N=1000) and ``max_samples=None`` (the default) keeps every row.

`datasets` caches parsed files and tokenised splits under ``~/.cache/huggingface/datasets`` (or
``$HF_DATASETS_CACHE``), keyed by the file and the transformation; nothing here needs a warm cache.
"""
from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from datasets import ClassLabel, Dataset, Features, Value, load_dataset
from torch.utils.data import DataLoader
from transformers import (AutoTokenizer, DataCollatorForLanguageModeling, DataCollatorWithPadding,
                          PreTrainedTokenizerBase)

ENV_VAR = "TICKETTUNE_DATA"
GLUE_HUB = "nyu-mll/glue"
WIKITEXT_HUB = ("Salesforce/wikitext", "wikitext-2-raw-v1")  # the hub's canonical name for "wikitext"
# ../shared/data beside the checkout: this file is <checkout>/trainables/data.py
CHECKOUT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@dataclass(frozen=True)
class TaskSpec:
    """What a GLUE task needs: the head to build, its columns, its metrics, where its files are.

    `metrics` are the keys `metrics.glue_metrics` returns; `main_metric` is the one to optimise (higher is
    better for all three). STS-B's main metric is Spearman correlation, the figure BERT (Devlin et al., 2019,
    Table 1) reports for STS-B; Pearson is returned beside it.
    """

    name: str  # our name, also the hub config: "sst2", "cola", "stsb"
    head: str  # "classification" or "regression" (model.load_model's `head`)
    num_labels: int  # classes; 1 for regression
    text_columns: tuple[str, ...]  # one sentence, or a pair fed to the tokenizer as (a, b)
    metrics: tuple[str, ...]
    main_metric: str
    folder: str  # local folder under <root>/glue: "SST-2", "CoLA", "STS-B"
    hub_config: str  # config of nyu-mll/glue
    tsv_columns: tuple[str, ...]  # every column of the local TSV, in file order
    tsv_header: bool  # whether the TSV's first line names its columns (then it must be `tsv_columns`)
    label_column: str  # which TSV column holds the label or score
    label_names: tuple[str, ...] = ()  # ClassLabel names (as on the hub); empty for regression
    score_range: tuple[float, float] | None = None  # regression targets must lie in it

    @property
    def is_regression(self) -> bool:
        return self.head == "regression"

    @property
    def features(self) -> Features:
        """The schema of `load_glue`'s datasets (the hub's for this config)."""
        cols = {c: Value("string") for c in self.text_columns}
        label = Value("float32") if self.is_regression else ClassLabel(names=list(self.label_names))
        return Features({**cols, "label": label, "idx": Value("int32")})


_STSB_TSV = ("index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2",
             "score")
TASKS: dict[str, TaskSpec] = {
    "sst2": TaskSpec("sst2", "classification", 2, ("sentence",), ("accuracy",), "accuracy", "SST-2", "sst2",
                     ("sentence", "label"), True, "label", ("negative", "positive")),
    "cola": TaskSpec("cola", "classification", 2, ("sentence",), ("matthews_correlation", "accuracy"),
                     "matthews_correlation", "CoLA", "cola", ("source", "label", "original_label", "sentence"),
                     False, "label", ("unacceptable", "acceptable")),
    "stsb": TaskSpec("stsb", "regression", 1, ("sentence1", "sentence2"), ("pearson", "spearmanr"), "spearmanr",
                     "STS-B", "stsb", _STSB_TSV, True, "score", score_range=(0.0, 5.0)),
}
HUB_SPLITS = {"train": "train", "dev": "validation"}  # our split names -> nyu-mll/glue's


def task_spec(task: str | TaskSpec) -> TaskSpec:
    """The spec of "sst2" / "SST-2" / "sst-2", "cola", "stsb" / "STS-B"; a TaskSpec passes through."""
    if isinstance(task, TaskSpec):
        return task
    key = str(task).lower().replace("-", "").replace("_", "")
    if key not in TASKS:
        raise ValueError(f"unknown GLUE task {task!r}; expected one of {sorted(TASKS)}")
    return TASKS[key]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The shared data folder: `root`, else $TICKETTUNE_DATA, else ../shared/data (from the current directory,
    then from this checkout). A path that is named but missing raises FileNotFoundError naming it."""
    if root is not None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"data root {str(path)!r} does not exist (or is not a folder)")
        return path.resolve()
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"${ENV_VAR}={env!r}: that folder does not exist")
        return path.resolve()
    candidates = [Path.cwd().parent / "shared" / "data", CHECKOUT_DATA]
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    raise FileNotFoundError(f"no data folder found (looked in {', '.join(str(p) for p in candidates)}); "
                            f"set {ENV_VAR}=/path/to/data (the folder holding glue/ and wikitext-2/) or pass root=")


# ---------------------------------------------------------------------------------------------------- GLUE


def _split_name(split: str) -> str:
    if split == "test":
        raise ValueError("GLUE test labels are not public; use split='train' or split='dev'")
    if split not in ("train", "dev", "validation"):
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'dev' ('validation' is an alias of 'dev')")
    return "dev" if split == "validation" else split


def glue_file(task: str | TaskSpec, split: str = "train", root: str | os.PathLike | None = None) -> Path:
    """<root>/glue/<folder>/<split>.tsv (or <root>/<folder>/<split>.tsv, a GLUE download script's layout)."""
    spec, split = task_spec(task), _split_name(split)
    base = data_root(root)
    tried = [base / "glue" / spec.folder / f"{split}.tsv", base / spec.folder / f"{split}.tsv"]
    for path in tried:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{spec.name} {split}: no file at {tried[0]} (nor {tried[1]})")


def _line_error(path: Path, line: int, what: str) -> ValueError:
    return ValueError(f"{path}, line {line}: {what}")


def _scan_tsv(path: Path, spec: TaskSpec) -> int:
    """Check every line's column count (and the header) on the raw bytes; returns the number of data rows.

    One row per line is what makes line numbers exact later, so a carriage return inside a line and a blank line
    are errors too (blank lines at the end of the file are allowed: the reader skips them)."""
    data = path.read_bytes()
    if not data.strip(b"\r\n"):
        raise ValueError(f"{path}: file is empty")
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)  # "\n" positions
    if data[-1:] != b"\n":
        ends = np.append(ends, len(buf))  # last line without a trailing newline (CoLA dev)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    lone_cr = np.flatnonzero(buf == 13)
    lone_cr = lone_cr[(lone_cr + 1 >= len(buf)) | (buf[np.minimum(lone_cr + 1, len(buf) - 1)] != 10)]
    if len(lone_cr):
        line = int(np.searchsorted(ends, lone_cr[0])) + 1
        raise _line_error(path, line, "carriage return inside a line (one row per line is expected)")
    lengths = lengths - (buf[np.maximum(ends - 1, 0)] == 13) * (lengths > 0)  # CRLF: the \r is not content
    n = len(ends)
    while n and lengths[n - 1] == 0:  # trailing blank lines
        n -= 1
    columns = np.bincount(np.searchsorted(ends, np.flatnonzero(buf == 9)), minlength=len(ends))[:n] + 1
    expected = len(spec.tsv_columns)
    bad = np.flatnonzero((columns != expected) | (lengths[:n] == 0))
    if len(bad):
        i = int(bad[0])
        what = "blank line" if lengths[i] == 0 else f"{columns[i]} tab-separated columns, expected {expected}"
        raise _line_error(path, i + 1, what + f" ({spec.name}: {', '.join(spec.tsv_columns)})")
    if spec.tsv_header:
        header = data[: ends[0]].decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r").split("\t")
        if tuple(header) != spec.tsv_columns:
            raise _line_error(path, 1, f"header {header} is not the expected {list(spec.tsv_columns)}")
        if n == 1:
            raise ValueError(f"{path}: no data rows after the header")
        return n - 1
    return n


_NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"


def _first_false(mask: pa.ChunkedArray | pa.Array) -> int | None:
    mask = pc.fill_null(mask, False)
    if pc.all(mask).as_py():
        return None
    return int(pc.index(mask, False).as_py())


def _parse_labels(path: Path, spec: TaskSpec, column: pa.ChunkedArray, first_line: int) -> np.ndarray:
    """Label strings -> int64 class ids or float32 scores; the first bad one raises with its line."""
    column = pc.utf8_rtrim(pc.fill_null(column, ""), characters="\r")
    if not spec.is_regression:
        bad = _first_false(pc.is_in(column, value_set=pa.array([str(i) for i in range(spec.num_labels)])))
        if bad is not None:
            raise _line_error(path, first_line + bad, f"label {column[bad].as_py()!r} is not a class index in "
                                                      f"0..{spec.num_labels - 1}")
        return pc.cast(column, pa.int64()).to_numpy()
    bad = _first_false(pc.match_substring_regex(pc.utf8_trim_whitespace(column), _NUMBER))
    if bad is not None:
        raise _line_error(path, first_line + bad, f"score {column[bad].as_py()!r} is not a number")
    scores = pc.cast(pc.utf8_trim_whitespace(column), pa.float64()).to_numpy()
    lo, hi = spec.score_range
    outside = np.flatnonzero((scores < lo) | (scores > hi))
    if len(outside):
        raise _line_error(path, first_line + int(outside[0]), f"score {scores[outside[0]]} is outside [{lo}, {hi}]")
    return scores.astype(np.float32)


def _read_glue_tsv(path: Path, spec: TaskSpec) -> Dataset:
    rows = _scan_tsv(path, spec)
    raw = load_dataset("csv", data_files=str(path), split="train", delimiter="\t", quoting=csv.QUOTE_NONE,
                       header=0 if spec.tsv_header else None, column_names=list(spec.tsv_columns),
                       features=Features({c: Value("string") for c in spec.tsv_columns}),
                       na_filter=False, keep_default_na=False, encoding="utf-8")
    if len(raw) != rows:  # cannot happen after _scan_tsv; guards the line numbers below
        raise ValueError(f"{path}: read {len(raw)} rows but the file has {rows} data lines")
    first_line = 2 if spec.tsv_header else 1
    labels = _parse_labels(path, spec, raw.data.column(spec.label_column), first_line)
    features = spec.features
    ds = raw.select_columns(list(spec.text_columns))
    ds = ds.add_column("label", labels, feature=features["label"])
    return ds.add_column("idx", np.arange(rows, dtype=np.int32), feature=features["idx"])


def _subset(ds: Dataset, max_samples: int | None, seed: int) -> Dataset:
    """The first `max_samples` of a seeded permutation, in file order; everything when None or >= len."""
    if max_samples is None or max_samples >= len(ds):
        return ds
    if max_samples < 1:
        raise ValueError(f"max_samples must be >= 1 (or None for all rows), got {max_samples}")
    picked = np.random.default_rng(seed).permutation(len(ds))[:max_samples]
    return ds.select(np.sort(picked))


def load_glue(task: str | TaskSpec, split: str = "train", root: str | os.PathLike | None = None,
              max_samples: int | None = None, source: str = "local", seed: int = 0) -> Dataset:
    """One GLUE split: text column(s), ``label`` (class id, or float32 score for STS-B) and ``idx``.

    `split` is "train" or "dev" ("validation" also works). `source="local"` reads the TSV under `data_root(root)`;
    `source="hub"` downloads ``nyu-mll/glue`` (needs network or a warm hub cache; `root` is ignored).
    `max_samples` keeps a seeded random subset (see `_subset`); the default keeps every row."""
    spec, split = task_spec(task), _split_name(split)
    if source == "local":
        ds = _read_glue_tsv(glue_file(spec, split, root), spec)
    elif source == "hub":
        ds = load_dataset(GLUE_HUB, spec.hub_config, split=HUB_SPLITS[split])
        ds = ds.select_columns([*spec.text_columns, "label", "idx"])
    else:
        raise ValueError(f"unknown source {source!r}; expected 'local' or 'hub'")
    return _subset(ds, max_samples, seed)


def as_tokenizer(tokenizer: PreTrainedTokenizerBase | str) -> PreTrainedTokenizerBase:
    """A tokenizer, or a model alias / path / hub name (model.resolve) to load one from."""
    if isinstance(tokenizer, str):
        from .model import resolve
        return AutoTokenizer.from_pretrained(resolve(tokenizer))
    return tokenizer


def _check_max_length(tokenizer: PreTrainedTokenizerBase, max_length: int, least: int) -> None:
    if max_length < least:
        raise ValueError(f"max_length must be >= {least}, got {max_length}")
    limit = tokenizer.model_max_length
    if limit and limit < 1_000_000 and max_length > limit:  # huge values mean "no limit recorded"
        raise ValueError(f"max_length={max_length} exceeds the tokenizer's model_max_length={limit}")


def tokenize_glue(ds: Dataset, tokenizer: PreTrainedTokenizerBase | str, task: str | TaskSpec,
                  max_length: int = 128) -> Dataset:
    """Tokenise (truncating, not padding) with the model's tokenizer: input_ids, token_type_ids, attention_mask,
    labels (class id, or float32 score). Pad per batch with `DataCollatorWithPadding` (as `glue_loader` does)."""
    spec, tokenizer = task_spec(task), as_tokenizer(tokenizer)
    _check_max_length(tokenizer, max_length, 4)
    missing = [c for c in (*spec.text_columns, "label") if c not in ds.column_names]
    if missing:
        raise ValueError(f"{spec.name}: dataset lacks column(s) {missing}; it has {ds.column_names}")
    cols = spec.text_columns

    def encode(batch: dict) -> dict:
        return tokenizer(*(batch[c] for c in cols), truncation=True, max_length=max_length)

    drop = [c for c in ds.column_names if c != "label"]
    out = ds.map(encode, batched=True, remove_columns=drop, desc=f"tokenizing {spec.name}")
    return out.rename_column("label", "labels")


def _seeded_loader(ds: Dataset, collator, batch_size: int, shuffle: bool, seed: int,
                   num_workers: int) -> DataLoader:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=collator,
                      num_workers=num_workers, pin_memory=torch.cuda.is_available())  # async copies to the GPU


def glue_loader(task: str | TaskSpec, split: str, tokenizer: PreTrainedTokenizerBase | str, batch_size: int = 32,
                max_length: int = 128, max_samples: int | None = None, shuffle: bool | None = None, seed: int = 0,
                root: str | os.PathLike | None = None, source: str = "local", num_workers: int = 0) -> DataLoader:
    """Batches of input_ids / token_type_ids / attention_mask / labels, padded to the longest in each batch.

    `shuffle` defaults to True for train and False for dev; the order is seeded by `seed` (a torch.Generator), as
    is the `max_samples` subset."""
    tokenizer = as_tokenizer(tokenizer)
    ds = load_glue(task, split, root=root, max_samples=max_samples, source=source, seed=seed)
    ds = tokenize_glue(ds, tokenizer, task, max_length=max_length)
    if shuffle is None:
        shuffle = _split_name(split) == "train"
    return _seeded_loader(ds, DataCollatorWithPadding(tokenizer), batch_size, shuffle, seed, num_workers)


# ---------------------------------------------------------------------------------------------- WikiText-2

TEXT_FILES = {  # local WikiText-2 splits under the data root
    "valid": "wikitext-2/valid.txt",  # tokenized release: <unk> for rare words
    "test": "wikitext-2/test.txt",
    "test_raw": "wikitext-2-raw/wiki.test.raw",  # raw release (no <unk>), CRLF line endings
}
_TEXT_ALIASES = {"validation": "valid", "raw_test": "test_raw", "test-raw": "test_raw"}
_WIKI_DETOK = (re.compile(r" @([-,.])@ "), r"\1")  # "1 @,@ 000" -> "1,000", "well @-@ known" -> "well-known"


def _text_files(split: str | Sequence[str], root: str | os.PathLike | None) -> list[str]:
    names = [split] if isinstance(split, (str, os.PathLike)) else list(split)
    if not names:
        raise ValueError("no text split or file given")
    files = []
    for name in names:
        key = _TEXT_ALIASES.get(str(name), str(name))
        if key == "train":
            raise FileNotFoundError("WikiText-2 train is not in the shared data; use split='valid'/'test' locally, "
                                    "or source='hub' (online) for train")
        if key in TEXT_FILES:
            path = data_root(root) / TEXT_FILES[key]
        else:
            path = Path(name).expanduser()
            path = path if path.is_absolute() else data_root(root) / path
        if not path.is_file():
            raise FileNotFoundError(f"text file {str(path)!r} not found (known splits: {sorted(TEXT_FILES)}, or give "
                                    "a file path, absolute or relative to the data root)")
        files.append(str(path))
    return files


def _clean_lines(batch: dict, drop_headings: bool) -> dict:
    kept = []
    for line in batch["text"]:
        line = line.strip()
        if not line or (drop_headings and line.startswith("= ") and line.endswith(" =")):
            continue
        kept.append(_WIKI_DETOK[0].sub(_WIKI_DETOK[1], line))
    return {"text": kept}


def load_text(split: str | Sequence[str] = "valid", root: str | os.PathLike | None = None, source: str = "local",
              hub: tuple[str, str] = WIKITEXT_HUB, drop_headings: bool = True) -> Dataset:
    """Lines of raw text (one column, ``text``) for MLM pre-training.

    `split`: "valid", "test", "test_raw" (local WikiText-2 files, see TEXT_FILES), or file path(s), absolute or
    relative to the data root. `source="hub"` loads `hub` = (name, config), split "train"/"valid"/"test".
    Blank lines are dropped, and section headings (`` = Title = ``) when `drop_headings`; WikiText's split
    markers are undone (`` @-@ `` -> ``-``, likewise ``,`` and ``.``)."""
    if source == "local":
        ds = load_dataset("text", data_files=_text_files(split, root), split="train", encoding="utf-8")
    elif source == "hub":
        if not isinstance(split, str):
            raise ValueError("source='hub' takes one split name")
        hub_split = {"valid": "validation"}.get(_TEXT_ALIASES.get(split, split), split)
        ds = load_dataset(hub[0], hub[1], split=hub_split).select_columns(["text"])
    else:
        raise ValueError(f"unknown source {source!r}; expected 'local' or 'hub'")
    return ds.map(_clean_lines, batched=True, remove_columns=ds.column_names,
                  fn_kwargs={"drop_headings": drop_headings}, desc="cleaning text")


def tokenize_text(ds: Dataset, tokenizer: PreTrainedTokenizerBase | str, max_length: int = 128,
                  batch_size: int = 1000) -> Dataset:
    """Tokenise lines, concatenate them and cut blocks of exactly `max_length` tokens: [CLS] + body + [SEP].

    Our version of HF's ``group_texts``, tokenising and grouping in one pass, and wrapping each block in the
    tokenizer's [CLS]/[SEP] (a BERT-family tokenizer is assumed) so every block is a well-formed sequence. Within
    each `batch_size` lines the tail shorter than a block is dropped (as HF does). WikiText's ``<unk>`` becomes
    the tokenizer's unknown token. Columns: input_ids, attention_mask, special_tokens_mask."""
    tokenizer = as_tokenizer(tokenizer)
    _check_max_length(tokenizer, max_length, 3)
    cls, sep, unk = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.unk_token
    if cls is None or sep is None:
        raise ValueError(f"{type(tokenizer).__name__} has no [CLS]/[SEP] tokens; a BERT-family tokenizer is needed")
    body = max_length - 2
    special = [1] + [0] * body + [1]
    ones = [1] * max_length

    def blocks(batch: dict) -> dict:
        texts = [t.replace("<unk>", unk) for t in batch["text"]] if unk else batch["text"]
        ids = tokenizer(texts, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False,
                        verbose=False)["input_ids"]
        flat = list(chain.from_iterable(ids))
        cut = range(0, len(flat) - body + 1, body)
        return {"input_ids": [[cls, *flat[i:i + body], sep] for i in cut],
                "attention_mask": [ones] * len(cut), "special_tokens_mask": [special] * len(cut)}

    return ds.map(blocks, batched=True, batch_size=batch_size, remove_columns=ds.column_names,
                  desc=f"grouping into {max_length}-token blocks")


def mlm_loader(tokenizer: PreTrainedTokenizerBase | str, split: str | Sequence[str] = "valid", batch_size: int = 32,
               max_length: int = 128, mlm_probability: float = 0.15, seed: int = 0, max_samples: int | None = None,
               root: str | os.PathLike | None = None, shuffle: bool = True, source: str = "local",
               num_workers: int = 0) -> DataLoader:
    """Masked-LM batches: input_ids (masked), attention_mask, labels (-100 except at the masked positions).

    `DataCollatorForLanguageModeling` picks `mlm_probability` of the non-special tokens, of which 80% become
    [MASK], 10% a random token, 10% stay; its masks and the shuffling are seeded by `seed`. `max_samples` keeps a
    seeded subset of the blocks."""
    tokenizer = as_tokenizer(tokenizer)
    if not 0.0 < mlm_probability < 1.0:
        raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability}")
    ds = tokenize_text(load_text(split, root=root, source=source), tokenizer, max_length=max_length)
    if len(ds) == 0:
        raise ValueError(f"text split {split!r} gives no {max_length}-token block")
    ds = _subset(ds, max_samples, seed)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=mlm_probability, seed=seed)
    return _seeded_loader(ds, collator, batch_size, shuffle, seed, num_workers)


__all__ = ["TASKS", "TEXT_FILES", "TaskSpec", "as_tokenizer", "data_root", "glue_file", "glue_loader", "load_glue",
           "load_text", "mlm_loader", "task_spec", "tokenize_glue", "tokenize_text"]
