"""Masked-LM pre-training: the shared WikiText-2, or the user's own text (files, folders of .txt, a hub dataset).

Own text is either grouped (lines tokenised, concatenated and cut into blocks of exactly `max_length`, as
data.tokenize_text does for WikiText) or line by line (each non-blank line one sequence, truncated, padded per
batch). Without validation files a seeded 10% of the sequences (seed 0, whatever the run's seed, so runs
compare) is held out for perplexity.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from datasets import Dataset, load_dataset
from torch import nn
from torch.utils.data import DataLoader
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerBase

from ..data import check_max_length, load_text, mlm_loader, seeded_loader, subset, tokenize_text
from ..train import mlm_eval
from .base import DataArgs, Task

MLM_PROBABILITY = 0.15
HELD_OUT = 0.1


class MlmTask(Task):
    """Shared by every MLM task: perplexity on held-out text, minimised."""

    mode = "min"

    @property
    def head(self) -> str:
        return "mlm"

    @property
    def main_metric(self) -> str:
        return "perplexity"

    def evaluate(self, model: nn.Module, data: DataLoader, precision: str = "auto") -> dict[str, float]:
        return mlm_eval(model, data, precision)


class WikiTextTask(MlmTask):
    """The shared WikiText-2 has no train split: train on valid, hold out test."""

    name = "wikitext"

    def train_loader(self, tokenizer: PreTrainedTokenizerBase, args: DataArgs) -> DataLoader:
        return mlm_loader(tokenizer, "valid", args.batch_size, max_length=args.max_length, seed=args.seed,
                          max_samples=args.max_train_samples, root=args.root)

    def eval_data(self, tokenizer: PreTrainedTokenizerBase, args: DataArgs) -> DataLoader:
        return mlm_loader(tokenizer, "test", args.batch_size, max_length=args.max_length, seed=args.seed,
                          max_samples=args.max_eval_samples, root=args.root, shuffle=False)


@dataclass(frozen=True)
class TextConfig:
    """The user's text: `text_files` (files, or folders whose *.txt are read, sorted) or a `hub` dataset."""

    text_files: tuple[str, ...] = ()
    validation_files: tuple[str, ...] = ()
    hub: str | None = None  # a hub dataset name (needs network or a warm cache)
    hub_config: str | None = None
    hub_split: str = "train"
    text_column: str = "text"
    line_by_line: bool = False
    name: str = "text"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TextConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown own-text task keys {unknown}; expected some of {sorted(known)}")
        d = dict(d)
        for key in ("text_files", "validation_files"):
            if isinstance(d.get(key), str):
                d[key] = (d[key],)
            d[key] = tuple(str(p) for p in d.get(key, ()))
        return cls(**d)


def text_files(paths: tuple[str, ...]) -> list[str]:
    """Files as given, folders expanded to their *.txt (recursively, sorted); missing or empty ones raise."""
    out = []
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir():
            found = sorted(q for q in path.rglob("*.txt") if q.is_file())
            if not found:
                raise FileNotFoundError(f"text folder {str(path)!r} holds no .txt file")
            out += found
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(f"text file {str(path)!r} not found")
    for path in out:
        if not path.read_bytes().strip():
            raise ValueError(f"{path}: file is empty")
    return [str(p) for p in out]


def _lines(batch: dict) -> dict:
    return {"text": [t.strip() for t in batch["text"] if t and t.strip()]}


def _line_by_line(ds: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> Dataset:
    check_max_length(tokenizer, max_length, 3)

    def encode(batch: dict) -> dict:
        return tokenizer(batch["text"], truncation=True, max_length=max_length, return_special_tokens_mask=True,
                         return_token_type_ids=False)

    return ds.map(encode, batched=True, remove_columns=ds.column_names, desc="tokenizing lines")


class TextTask(MlmTask):
    """MLM on the user's text (see TextConfig)."""

    def __init__(self, cfg: TextConfig):
        self.cfg, self.name = cfg, cfg.name
        self._cache: dict[tuple, tuple[Dataset, Dataset]] = {}

    def problems(self) -> list[str]:
        if bool(self.cfg.text_files) == bool(self.cfg.hub):
            return [f"task {self.name!r}: give text_files (files or folders of .txt) or hub (a dataset name), "
                    "not both"]
        return [f"task {self.name!r}: text file {p!r} not found"
                for p in (*self.cfg.text_files, *self.cfg.validation_files) if not Path(p).expanduser().exists()]

    def _raw(self, files: tuple[str, ...]) -> Dataset:
        if files:
            ds = load_dataset("text", data_files=text_files(files), split="train", encoding="utf-8")
        else:
            ds = load_dataset(self.cfg.hub, self.cfg.hub_config, split=self.cfg.hub_split)
            if self.cfg.text_column not in ds.column_names:
                raise ValueError(f"hub dataset {self.cfg.hub!r} has no column {self.cfg.text_column!r}; it has "
                                 f"{ds.column_names}")
            ds = ds.select_columns([self.cfg.text_column]).rename_column(self.cfg.text_column, "text") \
                if self.cfg.text_column != "text" else ds.select_columns(["text"])
        return ds.map(_lines, batched=True, remove_columns=ds.column_names, desc="dropping blank lines")

    def _sequences(self, tokenizer: PreTrainedTokenizerBase, max_length: int) -> tuple[Dataset, Dataset]:
        key = (tokenizer.name_or_path, len(tokenizer), max_length)
        if key not in self._cache:
            def cut(ds: Dataset) -> Dataset:
                if self.cfg.line_by_line:
                    return _line_by_line(ds, tokenizer, max_length)
                return tokenize_text(ds, tokenizer, max_length=max_length)

            train = cut(self._raw(self.cfg.text_files))
            if self.cfg.validation_files:
                dev = cut(self._raw(self.cfg.validation_files))
            elif len(train) >= 2:
                parts = train.train_test_split(test_size=HELD_OUT, seed=0)
                train, dev = parts["train"], parts["test"]
            else:
                dev = train.select([])
            where = ", ".join(self.cfg.text_files) or self.cfg.hub
            if len(train) == 0 or len(dev) == 0:
                raise ValueError(f"{where}: too little text for training and held-out sequences of {max_length} "
                                 f"tokens (add text, lower max_length, set line_by_line or give validation_files)")
            self._cache[key] = (train, dev)
        return self._cache[key]

    def _loader(self, ds: Dataset, tokenizer, args: DataArgs, max_samples: int | None, shuffle: bool):
        collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=MLM_PROBABILITY,
                                                   seed=args.seed)
        return seeded_loader(subset(ds, max_samples, args.seed), collator, args.batch_size, shuffle, args.seed,
                             args.num_workers)

    def train_loader(self, tokenizer: PreTrainedTokenizerBase, args: DataArgs) -> DataLoader:
        train, _ = self._sequences(tokenizer, args.max_length)
        return self._loader(train, tokenizer, args, args.max_train_samples, True)

    def eval_data(self, tokenizer: PreTrainedTokenizerBase, args: DataArgs) -> DataLoader:
        _, dev = self._sequences(tokenizer, args.max_length)
        return self._loader(dev, tokenizer, args, args.max_eval_samples, False)

    def check(self, args: DataArgs) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))
        if self.cfg.text_files:
            text_files(self.cfg.text_files + self.cfg.validation_files)

    def info(self) -> dict:
        return {**super().info(), "text_files": list(self.cfg.text_files), "hub": self.cfg.hub,
                "line_by_line": self.cfg.line_by_line}


__all__ = ["MlmTask", "TextConfig", "TextTask", "WikiTextTask", "load_text", "text_files"]
