"""The training loop's hooks (train.py): what EarlyBERT's L1 penalty, PLD's schedule, the early-bird
detector and the flow's reports plug in through (and `Every`, the periodic report). Its own module, so
that they need not import the loop."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

EXAMPLE_INDEX = "example_index"  # a train row's position in its dataset (tasks/example_index.py): never a model input


def split_rows(batch: Mapping[str, Any]) -> tuple[dict, dict]:
    """(the model's inputs, the keys that only say which rows the batch holds): the loop passes the first to the
    forward and both to `Callback.batch_loss`."""
    inputs = {k: v for k, v in batch.items() if k != EXAMPLE_INDEX}
    return inputs, {k: v for k, v in batch.items() if k == EXAMPLE_INDEX}


class Callback:
    """Hooks into the loop; every method is optional."""

    def before_step(self, step: int) -> None:
        """Called before each optimizer step; `step` = optimizer steps done so far."""

    def extra_loss(self, model: nn.Module) -> torch.Tensor | None:
        """A term added once per optimizer step (e.g. L1 on slimming coefficients)."""
        return None

    def batch_loss(self, outputs: Any, batch: dict) -> torch.Tensor | None:
        """A term of this micro-batch's loss from the model's `outputs` (e.g. distillation against cached teacher
        logits, looked up by `batch[EXAMPLE_INDEX]`); the loop scales it for gradient accumulation like the loss."""
        return None

    def after_step(self, step: int, logs: dict) -> bool:
        """Called after each optimizer step; return True to stop training."""
        return False


class Every(Callback):
    """Calls `fn(step, logs)` once at each step whose `offset + step` is a multiple of one of `intervals` (None:
    unused); `offset`: the steps the trial ran before this loop (a ticket phase counts on from its search).
    Every rank calls it at the same steps: reports are collective."""

    def __init__(self, intervals: list[int | None], fn, offset: int = 0):
        self.intervals, self.fn, self.offset = [i for i in intervals if i], fn, offset

    def after_step(self, step: int, logs: dict) -> bool:
        if any((self.offset + step) % i == 0 for i in self.intervals):
            self.fn(step, logs)
        return False
