"""The training loop's hooks (train.py): what EarlyBERT's L1 penalty, PLD's schedule, the early-bird
detector and the flow's reports plug in through (and `Every`, the periodic report). Its own module, so
that they need not import the loop."""

from __future__ import annotations

import torch
from torch import nn


class Callback:
    """Hooks into the loop; every method is optional."""

    def before_step(self, step: int) -> None:
        """Called before each optimizer step; `step` = optimizer steps done so far."""

    def extra_loss(self, model: nn.Module) -> torch.Tensor | None:
        """A term added once per optimizer step (e.g. L1 on slimming coefficients)."""
        return None

    def after_step(self, step: int, logs: dict) -> bool:
        """Called after each optimizer step; return True to stop training."""
        return False


class Every(Callback):
    """Calls `fn(step, logs)` once at each step that is a multiple of one of `intervals` (None: unused).
    Every rank calls it at the same steps: reports are collective."""

    def __init__(self, intervals: list[int | None], fn):
        self.intervals, self.fn = [i for i in intervals if i], fn

    def after_step(self, step: int, logs: dict) -> bool:
        if any(step % i == 0 for i in self.intervals):
            self.fn(step, logs)
        return False
