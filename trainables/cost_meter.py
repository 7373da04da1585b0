"""FLOPs a trial has spent: what `relative_cost` divides by the dense budget."""

from __future__ import annotations

from torch import nn

from . import pld as pld_mod
from .model.flops import shape_of, train_flops_per_sequence
from .training.callbacks import Callback


class CostMeter(Callback):
    """Training FLOPs so far, counting only the layers PLD actually ran."""

    def __init__(self, model: nn.Module, seq: int, batch: int, dense_flops_per_step: float):
        self.shape, self.seq, self.batch = shape_of(model), seq, batch
        self.dense = dense_flops_per_step
        self.flops = 0.0
        self.dropper = pld_mod.dropper_of(model)

    def after_step(self, step: int, logs: dict) -> bool:
        kept = self.dropper.last_kept() if self.dropper is not None else None
        self.flops += self.batch * train_flops_per_sequence(self.shape, self.seq, kept)
        return False
