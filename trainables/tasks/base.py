"""What every task is: the one object flow.py, cli.py, the search spec and the ticket ask about a task."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from torch import nn
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

MODES = ("max", "min")


@dataclass(frozen=True)
class DataArgs:
    """How much data, cut how, batched how: the caller's settings, the same for every task."""

    root: str | None = None  # data root for the shared/local files (data.data_root)
    max_length: int = 128
    batch_size: int = 32
    eval_batch_size: int = 64
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    seed: int = 0
    source: str = "local"  # "local" files, or "hub" (named datasets only)
    num_workers: int = 0
    group_by_length: bool = False  # train batches of similar lengths (sampler.py): little padding
    pad_to_multiple_of: int | None = None  # train batches padded to a multiple of this length: few shapes


class Task(ABC):
    """A task: reads and checks its rows (errors name file and line), tokenizes them, names the head the model
    needs, and turns predictions into metrics (`main_metric`, optimised in direction `mode`).

    `head`/`num_labels` may need the training rows (own data: the label set comes from train), so they are
    valid after `check(args)`; tasks whose head is fixed know them at once."""

    name: str
    mode: str = "max"
    # the key of `evaluate`'s dev loss (lower is better; what ASHA may judge early rungs on: rung_metric val_loss),
    # None: the task has none (SQuAD's windows keep no answer positions at eval)
    loss_key: str | None = "loss"
    default_max_length: int = 64  # tokens per sequence when the user gives none (the CLI's --max-length)

    @property
    @abstractmethod
    def head(self) -> str: ...

    @property
    def num_labels(self) -> int:
        return 1

    @property
    @abstractmethod
    def main_metric(self) -> str: ...

    def problems(self) -> list[str]:
        """Config problems found without reading data (a named file that does not exist, a bad option)."""
        return []

    def check(self, args: DataArgs) -> None:
        """Read and check every row of the splits this run uses; raises before any compute. Default: nothing
        to check ahead of `train_loader` / `eval_data`."""

    @abstractmethod
    def train_loader(self, tokenizer: PreTrainedTokenizerBase, args: DataArgs) -> DataLoader: ...

    @abstractmethod
    def eval_data(self, tokenizer: PreTrainedTokenizerBase, args: DataArgs) -> Any:
        """What `evaluate` needs (a loader, or several: MNLI's matched and mismatched dev sets)."""

    @abstractmethod
    def evaluate(self, model: nn.Module, data: Any, precision: str = "auto") -> dict[str, float]:
        """Every metric of the task on `data` (from `eval_data`); `main_metric` among them."""

    def size(self, data: Any) -> int:
        """How many rows (examples) a loader or `eval_data`'s result holds, for messages; -1: streamed."""
        if isinstance(data, dict):
            return sum(self.size(d) for d in data.values())
        try:
            return len(data.dataset)
        except TypeError:
            return -1

    def info(self) -> dict:
        """JSON-able facts about the task a ticket records (name, head, labels ...)."""
        return {
            "name": self.name,
            "head": self.head,
            "num_labels": self.num_labels,
            "main_metric": self.main_metric,
            "mode": self.mode,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
