"""Data formats below the tasks: where the data lives, checked TSV reading, subsets, the loader, WikiText text.

Where the data lives (`data_root`): an explicit argument, else ``$TICKETTUNE_DATA``, else ``../shared/data``
from the current directory, else ``../shared/data`` beside this checkout. The folder holds GLUE in its original
TSV layout (``glue/SST-2/train.tsv`` ...) and WikiText-2 text files. Which columns a task reads and what its
labels mean is the task's business (trainables/tasks); this module only checks the file's shape.

TSV files are read by the ``csv`` builder with quoting off (sentences contain quotes) and every column as a
string, after a vectorised scan of the raw bytes (NumPy) checks every line's column count: a bad row raises
ValueError naming the file and its 1-based line before anything is tokenised; 67k rows check in milliseconds.

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
from itertools import chain
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, Features, Value, load_dataset
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, DataCollatorForLanguageModeling, PreTrainedTokenizerBase

from .sampler import LengthGroupedSampler, length_order

ENV_VAR = "TICKETTUNE_DATA"
WIKITEXT_HUB = ("Salesforce/wikitext", "wikitext-2-raw-v1")  # the hub's canonical name for "wikitext"
# ../shared/data beside the checkout: this file is <checkout>/trainables/tasks/data.py
CHECKOUT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


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
    raise FileNotFoundError(
        f"no data folder found (looked in {', '.join(str(p) for p in candidates)}); "
        f"set {ENV_VAR}=/path/to/data (the folder holding glue/ and wikitext-2/) or pass root="
    )


# ------------------------------------------------------------------------------------ TSV files, subsets, loaders


def line_error(path: Path, line: int, what: str) -> ValueError:
    return ValueError(f"{path}, line {line}: {what}")


def scan_tsv(path: Path, columns: Sequence[str] | None, what: str = "") -> tuple[list[str], int]:
    """Check every line's column count on the raw bytes; returns (column names, number of data rows).

    `columns=None`: the first line is a header naming the columns (a UTF-8 BOM before it is dropped), and every
    line must have as many; else the file has no header and every line must have len(columns). One row per
    line is what makes line numbers exact later, so a carriage return inside a line and a blank line are
    errors too (blank lines at the end of the file are allowed: the reader skips them). `what` is added to
    column-count errors (e.g. the task's expected columns)."""
    data = path.read_bytes()
    if not data.lstrip(b"\xef\xbb\xbf").strip(b"\r\n"):
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
        raise line_error(path, line, "carriage return inside a line (one row per line is expected)")
    lengths = lengths - (buf[np.maximum(ends - 1, 0)] == 13) * (lengths > 0)  # CRLF: the \r is not content
    n = len(ends)
    while n and lengths[n - 1] == 0:  # trailing blank lines
        n -= 1
    counts = np.bincount(np.searchsorted(ends, np.flatnonzero(buf == 9)), minlength=len(ends))[:n] + 1
    if columns is None:
        names = data[: ends[0]].decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r").split("\t")
    else:
        names = list(columns)
    expected = len(names)
    bad = np.flatnonzero((counts != expected) | (lengths[:n] == 0))
    if len(bad):
        i = int(bad[0])
        problem = "blank line" if lengths[i] == 0 else f"{counts[i]} tab-separated columns, expected {expected}"
        raise line_error(path, i + 1, problem + (f" ({what})" if what else ""))
    if columns is None:
        if n == 1:
            raise ValueError(f"{path}: no data rows after the header")
        return names, n - 1
    return names, n


def read_tsv(path: Path, columns: Sequence[str] | None, keep: Sequence[str], what: str = "") -> Dataset:
    """The `keep` columns of a checked TSV (see `scan_tsv`), every value a string, quoting off (quotes inside
    sentences are text). A `keep` column the header lacks is an error on line 1."""
    names, rows = scan_tsv(path, columns, what)
    missing = [c for c in keep if c not in names]
    if missing:
        raise line_error(path, 1, f"header {names} lacks column(s) {missing}" + (f" ({what})" if what else ""))
    raw = load_dataset(
        "csv",
        data_files=str(path),
        split="train",
        delimiter="\t",
        quoting=csv.QUOTE_NONE,
        header=0 if columns is None else None,
        column_names=names,
        features=Features({c: Value("string") for c in names}),
        na_filter=False,
        keep_default_na=False,
        encoding="utf-8",
    )
    if len(raw) != rows:  # cannot happen after scan_tsv; guards the line numbers callers give
        raise ValueError(f"{path}: read {len(raw)} rows but the file has {rows} data lines")
    return raw.select_columns(list(dict.fromkeys(keep)))


def subset(ds: Dataset, max_samples: int | None, seed: int) -> Dataset:
    """The first `max_samples` of a seeded permutation, in file order; everything when None or >= len."""
    if max_samples is None or max_samples >= len(ds):
        return ds
    if max_samples < 1:
        raise ValueError(f"max_samples must be >= 1 (or None for all rows), got {max_samples}")
    picked = np.random.default_rng(seed).permutation(len(ds))[:max_samples]
    return ds.select(np.sort(picked))


def as_tokenizer(tokenizer: PreTrainedTokenizerBase | str) -> PreTrainedTokenizerBase:
    """A tokenizer, or a model alias / path / hub name (model.resolve) to load one from."""
    if isinstance(tokenizer, str):
        from ..model.build import model_path

        return AutoTokenizer.from_pretrained(model_path(tokenizer))
    return tokenizer


def check_max_length(tokenizer: PreTrainedTokenizerBase, max_length: int, least: int) -> None:
    if max_length < least:
        raise ValueError(f"max_length must be >= {least}, got {max_length}")
    limit = tokenizer.model_max_length
    if limit and limit < 1_000_000 and max_length > limit:  # huge values mean "no limit recorded"
        raise ValueError(f"max_length={max_length} exceeds the tokenizer's model_max_length={limit}")


def _seeded_loader(
    ds: Dataset,
    collator,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int,
    group_by_length: bool = False,
    pad_to_multiple_of: int | None = None,
    sort_by_length: bool = False,
) -> DataLoader:
    """The one place loaders are built. The order is seeded by a torch.Generator (`loader.generator`, which
    flow.py reseeds); `group_by_length` batches similar lengths together (sampler.py) when shuffling.
    `sort_by_length` (evaluation, no shuffling) yields the rows longest first, so each batch pads to little:
    the metrics do not depend on row order (labels travel with their rows), and an SST-2 dev pass takes
    less than half the time of the file's order (sampler.py).
    `pad_to_multiple_of` rounds each batch's padded length up to a multiple (the collator's own option):
    a handful of distinct shapes instead of one per length, which oneDNN's kernel cache and torch.compile
    (one graph per shape) need."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if pad_to_multiple_of is not None:
        if pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be >= 1 (or None), got {pad_to_multiple_of}")
        if not hasattr(collator, "pad_to_multiple_of"):
            raise ValueError(f"pad_to_multiple_of={pad_to_multiple_of}: {type(collator).__name__} pads to no multiple")
        collator.pad_to_multiple_of = pad_to_multiple_of
    generator = torch.Generator()
    generator.manual_seed(seed)
    tokenized = "input_ids" in (getattr(ds, "column_names", None) or ())
    if tokenized and ((shuffle and group_by_length) or (sort_by_length and not shuffle)):
        lengths = [len(ids) for ids in ds["input_ids"]]
        if shuffle:
            sampler = LengthGroupedSampler(lengths, batch_size, generator=generator)
        else:
            sampler = length_order(lengths).tolist()
        return DataLoader(
            ds,
            batch_size=batch_size,
            sampler=sampler,
            generator=generator,
            collate_fn=collator,
            num_workers=num_workers,
        )
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        collate_fn=collator,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
    )  # async copies to the GPU


seeded_loader = _seeded_loader


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
            raise FileNotFoundError(
                "WikiText-2 train is not in the shared data; use split='valid'/'test' locally, "
                "or source='hub' (online) for train"
            )
        if key in TEXT_FILES:
            path = data_root(root) / TEXT_FILES[key]
        else:
            path = Path(name).expanduser()
            path = path if path.is_absolute() else data_root(root) / path
        if not path.is_file():
            raise FileNotFoundError(
                f"text file {str(path)!r} not found (known splits: {sorted(TEXT_FILES)}, or give "
                "a file path, absolute or relative to the data root)"
            )
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


def load_text(
    split: str | Sequence[str] = "valid",
    root: str | os.PathLike | None = None,
    source: str = "local",
    hub: tuple[str, str] = WIKITEXT_HUB,
    drop_headings: bool = True,
) -> Dataset:
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
    return ds.map(
        _clean_lines,
        batched=True,
        remove_columns=ds.column_names,
        fn_kwargs={"drop_headings": drop_headings},
        desc="cleaning text",
    )


def tokenize_text(
    ds: Dataset, tokenizer: PreTrainedTokenizerBase | str, max_length: int = 128, batch_size: int = 1000
) -> Dataset:
    """Tokenise lines, concatenate them and cut blocks of exactly `max_length` tokens: [CLS] + body + [SEP].

    Our version of HF's ``group_texts``, tokenising and grouping in one pass, and wrapping each block in the
    tokenizer's [CLS]/[SEP] (a BERT-family tokenizer is assumed) so every block is a well-formed sequence. Within
    each `batch_size` lines the tail shorter than a block is dropped (as HF does). WikiText's ``<unk>`` becomes
    the tokenizer's unknown token. Columns: input_ids, attention_mask, special_tokens_mask."""
    blocks = text_blocks(as_tokenizer(tokenizer), max_length)
    return ds.map(
        blocks,
        batched=True,
        batch_size=batch_size,
        remove_columns=ds.column_names,
        desc=f"grouping into {max_length}-token blocks",
    )


def text_blocks(tokenizer: PreTrainedTokenizerBase, max_length: int):
    """The batched function `tokenize_text` maps (also over streamed datasets): {"text": [...]} -> blocks."""
    check_max_length(tokenizer, max_length, 3)
    cls, sep, unk = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.unk_token
    if cls is None or sep is None:
        raise ValueError(f"{type(tokenizer).__name__} has no [CLS]/[SEP] tokens; a BERT-family tokenizer is needed")
    body = max_length - 2
    special = [1] + [0] * body + [1]
    ones = [1] * max_length

    def blocks(batch: dict) -> dict:
        texts = [t.replace("<unk>", unk) for t in batch["text"]] if unk else batch["text"]
        ids = tokenizer(
            texts, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False, verbose=False
        )["input_ids"]
        flat = list(chain.from_iterable(ids))
        cut = range(0, len(flat) - body + 1, body)
        return {
            "input_ids": [[cls, *flat[i : i + body], sep] for i in cut],
            "attention_mask": [ones] * len(cut),
            "special_tokens_mask": [special] * len(cut),
        }

    return blocks


def mlm_loader(
    tokenizer: PreTrainedTokenizerBase | str,
    split: str | Sequence[str] = "valid",
    batch_size: int = 32,
    max_length: int = 128,
    mlm_probability: float = 0.15,
    seed: int = 0,
    max_samples: int | None = None,
    root: str | os.PathLike | None = None,
    shuffle: bool = True,
    source: str = "local",
    num_workers: int = 0,
) -> DataLoader:
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
    ds = subset(ds, max_samples, seed)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=mlm_probability, seed=seed)
    return _seeded_loader(ds, collator, batch_size, shuffle, seed, num_workers)


__all__ = [
    "TEXT_FILES",
    "as_tokenizer",
    "check_max_length",
    "data_root",
    "line_error",
    "load_text",
    "mlm_loader",
    "read_tsv",
    "scan_tsv",
    "seeded_loader",
    "subset",
    "text_blocks",
    "tokenize_text",
]
