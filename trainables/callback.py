"""The training loop's hooks (train.py): what EarlyBERT's L1 penalty, PLD's schedule, the early-bird
detector and the flow's reports plug in through. Its own module, so that they need not import the loop."""
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
