"""Masked-LM pre-training: the shared WikiText-2, or the user's own text (files, folders of .txt, a hub dataset).

Own text is either grouped (lines tokenised, concatenated and cut into blocks of exactly `max_length`, as
data.tokenize_text does for WikiText) or line by line (each non-blank line one sequence, truncated, padded per
batch). Without validation text a seeded 10% of the sequences (seed 0, whatever the run's seed, so runs
compare) is held out for perplexity.

`streaming: true` reads the training text lazily (datasets' IterableDataset: a corpus larger than memory), cut
as it is read, shuffled in a seeded buffer and, under torch.distributed, split between the ranks; it needs
held-out text (`validation_files` or `hub_validation_split`) and a step budget (max_steps), not epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.distributed as dist
from datasets import Dataset, IterableDataset, load_dataset
from datasets.distributed import split_dataset_by_node
from torch import nn
from torch.utils.data import DataLoader
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerBase

from ..training.loop import mlm_eval
from .base import DataArgs, Task
from .config_keys import unknown_keys
from .data import check_max_length, load_text, mlm_loader, seeded_loader, subset, text_blocks

MLM_PROBABILITY = 0.15
HELD_OUT = 0.1
SHUFFLE_BUFFER = 10_000  # streamed sequences shuffled within a buffer this large


class MlmTask(Task):
    """Shared by every MLM task: perplexity on held-out text, minimised."""

    mode = "min"
    loss_key = "mlm_loss"

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
        return self._loader(tokenizer, args, "valid", args.max_train_samples, shuffle=True)

    def eval_data(self, tokenizer: PreTrainedTokenizerBase, args: DataArgs) -> DataLoader:
        return self._loader(tokenizer, args, "test", args.max_eval_samples, shuffle=False)

    @staticmethod
    def _loader(tokenizer, args: DataArgs, split: str, max_samples: int | None, shuffle: bool) -> DataLoader:
        """The shared WikiText-2: valid.txt trains, test.txt is held out."""
        return mlm_loader(
            tokenizer,
            split,
            args.batch_size,
            max_length=args.max_length,
            seed=args.seed,
            max_samples=max_samples,
            root=args.root,
            shuffle=shuffle,
        )


@dataclass(frozen=True)
class TextConfig:
    """The user's text: `text_files` (files, or folders whose *.txt are read, sorted) or a `hub` dataset."""

    text_files: tuple[str, ...] = ()
    validation_files: tuple[str, ...] = ()
    hub: str | None = None  # a hub dataset name (needs network or a warm cache)
    hub_config: str | None = None
    hub_split: str = "train"
    hub_validation_split: str | None = None  # held-out text from the hub (else 10% of hub_split)
    text_column: str = "text"
    line_by_line: bool = False
    streaming: bool = False
    name: str = "text"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TextConfig":
        unknown, known = unknown_keys(cls, d)
        if unknown:
            raise ValueError(f"unknown own-text task keys {unknown}; expected some of {known}")
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
        if not _has_text(path):
            raise ValueError(f"{path}: file is empty")
    return [str(p) for p in out]


def _has_text(path: Path, chunk: int = 1 << 20) -> bool:
    """Whether the file holds anything but whitespace, reading only as far as the first text (big corpora)."""
    with path.open("rb") as f:
        while block := f.read(chunk):
            if block.strip():
                return True
    return False


def _lines(batch: dict) -> dict:
    return {"text": [t.strip() for t in batch["text"] if t and t.strip()]}


def _lines_fn(tokenizer: PreTrainedTokenizerBase, max_length: int):
    check_max_length(tokenizer, max_length, 3)

    def encode(batch: dict) -> dict:
        return tokenizer(
            batch["text"],
            truncation=True,
            max_length=max_length,
            return_special_tokens_mask=True,
            return_token_type_ids=False,
        )

    return encode


class TextTask(MlmTask):
    """MLM on the user's text (see TextConfig)."""

    def __init__(self, cfg: TextConfig):
        self.cfg, self.name = cfg, cfg.name
        self._cache: dict[tuple, tuple[Dataset, Dataset]] = {}

    def problems(self) -> list[str]:
        cfg, out = self.cfg, []
        if bool(cfg.text_files) == bool(cfg.hub):
            out.append(
                f"task {self.name!r}: give text_files (files or folders of .txt) or hub (a dataset name), not both"
            )
        if cfg.streaming and not (cfg.validation_files or (cfg.hub and cfg.hub_validation_split)):
            out.append(
                f"task {self.name!r}: streaming needs held-out text: validation_files, or hub_validation_split with hub"
            )
        return out + [
            f"task {self.name!r}: text file {p!r} not found"
            for p in (*cfg.text_files, *cfg.validation_files)
            if not Path(p).expanduser().exists()
        ]

    def _raw(self, files: tuple[str, ...], split: str | None = None, streaming: bool = False):
        """Non-blank lines (column ``text``) of `files`, or of the hub dataset's `split`."""
        if files:
            ds = load_dataset(
                "text", data_files=text_files(files), split="train", encoding="utf-8", streaming=streaming
            )
        else:
            ds = load_dataset(
                self.cfg.hub,
                self.cfg.hub_config,
                split=split or self.cfg.hub_split,
                **({"streaming": True} if streaming else {}),
            )
            if ds.column_names is not None and self.cfg.text_column not in ds.column_names:
                raise ValueError(
                    f"hub dataset {self.cfg.hub!r} has no column {self.cfg.text_column!r}; it has {ds.column_names}"
                )
            ds = ds.select_columns([self.cfg.text_column])
            if self.cfg.text_column != "text":
                ds = ds.rename_column(self.cfg.text_column, "text")
        kw = {} if isinstance(ds, IterableDataset) else {"desc": "dropping blank lines"}
        return ds.map(_lines, batched=True, remove_columns=["text"], **kw)

    def _cut(self, ds, tokenizer: PreTrainedTokenizerBase, max_length: int):
        fn = _lines_fn(tokenizer, max_length) if self.cfg.line_by_line else text_blocks(tokenizer, max_length)
        kw = {} if isinstance(ds, IterableDataset) else {"desc": f"cutting {max_length}-token sequences"}
        return ds.map(fn, batched=True, remove_columns=["text"], **kw)

    def _sequences(self, tokenizer: PreTrainedTokenizerBase, max_length: int) -> tuple[Dataset, Dataset]:
        key = (tokenizer.name_or_path, len(tokenizer), max_length)
        if key not in self._cache:

            def cut(ds: Dataset) -> Dataset:
                return self._cut(ds, tokenizer, max_length)

            held_out = self.cfg.validation_files or self.cfg.hub_validation_split
            train = None if self.cfg.streaming else cut(self._raw(self.cfg.text_files))
            if held_out:
                dev = cut(self._raw(self.cfg.validation_files, self.cfg.hub_validation_split))
                if train is None:  # streamed: train is read as it is used
                    train = dev
            elif len(train) >= 2:
                parts = train.train_test_split(test_size=HELD_OUT, seed=0)
                train, dev = parts["train"], parts["test"]
            else:
                dev = train.select([])
            where = ", ".join(self.cfg.text_files) or self.cfg.hub
            if len(train) == 0 or len(dev) == 0:
                raise ValueError(
                    f"{where}: too little text for training and held-out sequences of {max_length} "
                    f"tokens (add text, lower max_length, set line_by_line or give validation_files)"
                )
            self._cache[key] = (train, dev)
        return self._cache[key]

    def _loader(self, ds: Dataset, tokenizer, args: DataArgs, max_samples: int | None, shuffle: bool):
        collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=MLM_PROBABILITY, seed=args.seed)
        return seeded_loader(
            subset(ds, max_samples, args.seed), collator, args.batch_size, shuffle, args.seed, args.num_workers
        )

    def train_loader(self, tokenizer: PreTrainedTokenizerBase, args: DataArgs) -> DataLoader:
        if self.cfg.streaming:
            return self._stream(tokenizer, args)
        train, _ = self._sequences(tokenizer, args.max_length)
        return self._loader(train, tokenizer, args, args.max_train_samples, True)

    def _stream(self, tokenizer: PreTrainedTokenizerBase, args: DataArgs) -> DataLoader:
        self._sequences(tokenizer, args.max_length)  # the held-out text: read (and checked) now
        ds = self._cut(self._raw(self.cfg.text_files, streaming=True), tokenizer, args.max_length)
        ds = ds.shuffle(seed=args.seed, buffer_size=SHUFFLE_BUFFER)
        if dist.is_available() and dist.is_initialized():  # each rank its own shard of the stream
            ds = split_dataset_by_node(ds, rank=dist.get_rank(), world_size=dist.get_world_size())
        if args.max_train_samples is not None:
            ds = ds.take(args.max_train_samples)
        collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=MLM_PROBABILITY, seed=args.seed)
        return seeded_loader(ds, collator, args.batch_size, False, args.seed, args.num_workers)

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
        return {
            **super().info(),
            "text_files": list(self.cfg.text_files),
            "hub": self.cfg.hub,
            "line_by_line": self.cfg.line_by_line,
            "streaming": self.cfg.streaming,
        }


__all__ = ["MlmTask", "TextConfig", "TextTask", "WikiTextTask", "load_text", "text_files"]
