"""What one trial carries from phase to phase: its budget, FLOPs (`CostMeter`) and clock, and where its reports go.

Every report of a trial states the same running totals (relative cost and time against the dense run it
replaces, the last dev metric); the phases only add what is theirs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import nn

from . import pld as pld_mod
from .budget import relative_time
from .config import FlowConfig, FlowResult
from .model.flops import shape_of, train_flops_per_sequence
from .reporter import Reporter
from .training.callbacks import Callback
from .training.clock import TrainingClock


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


@dataclass
class TrialRun:
    cfg: FlowConfig
    reporter: Reporter
    budget: int  # optimizer steps of the dense run this trial replaces
    cost: CostMeter
    clock: TrainingClock = field(default_factory=TrainingClock)
    dense_step_s: float = math.nan  # measured on the dense model (search phase or baseline)
    val: float = math.nan  # the latest dev metric
    val_loss: float = math.nan  # the latest dev loss (NaN: the task has none): what `rung_metric: val_loss` judges
    history: list[dict] = field(default_factory=list)

    @property
    def relative_cost(self) -> float:
        return self.cost.flops / (self.cost.dense * self.budget)

    @property
    def relative_time(self) -> float:
        return relative_time(self.clock.elapsed(), self.dense_step_s, self.budget)

    def send(self, metrics: dict, checkpoint_dir: str | None = None) -> None:
        """One report: the running totals, then the phase's own metrics (which may override them)."""
        metrics = {
            "val_metric": self.val,
            "val_loss": self.val_loss,
            "relative_cost": self.relative_cost,
            "relative_time": self.relative_time,
            "train_seconds": self.clock.elapsed(),
            "budget_steps": self.budget,
            "baseline": self.cfg.baseline,
            **metrics,
        }
        self.history.append(metrics)
        self.reporter.report(metrics, checkpoint_dir=checkpoint_dir)

    def score(self, model: nn.Module, eval_data) -> float:
        """The task's main dev metric (and its dev loss, kept), its time kept out of the training clock."""
        task = self.cfg.task_obj
        scores = self.clock.paused_for(lambda: task.evaluate(model, eval_data, self.cfg.levers()["precision"]))
        self.val = float(scores[task.main_metric])
        self.val_loss = float(scores[task.loss_key]) if task.loss_key else math.nan
        return self.val

    def result(self, **facts) -> FlowResult:
        return FlowResult(
            val_metric=self.val,
            metric_name=self.cfg.task_obj.main_metric,
            relative_cost=self.relative_cost,
            history=self.history,
            **facts,
        )
