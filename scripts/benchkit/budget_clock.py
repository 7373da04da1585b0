"""Wall-clock budgets for the pre-training benchmark: an lr schedule on the clock, a held-out loss curve on
that clock (its evaluations do not count), and the time at which a curve first reaches a loss."""

from __future__ import annotations

from typing import Callable

import torch

from tickettune.trainables.training.callbacks import Callback
from tickettune.trainables.training.clock import TrainingClock


class BudgetSchedule(Callback):
    """Sets the lr from the elapsed fraction of a wall-clock budget and stops training when it is spent.

    lr = peak · min(f / warmup, (1 − f) / (1 − warmup)), f = training seconds / budget, clamped at 0. It is
    written into the optimizer before every step, overriding `train`'s step-based schedule (run that one
    with warmup_ratio=0 and a step count far beyond reach, so it never acts). Seconds spent in `clock.paused_for`
    (held-out evaluations) are not training time."""

    def __init__(self, optimizer: torch.optim.Optimizer, seconds: float, warmup_ratio: float):
        self.optimizer, self.seconds, self.warmup = optimizer, seconds, warmup_ratio
        self.peaks = [g["lr"] for g in optimizer.param_groups]
        self.clock = TrainingClock()  # the flow's paused clock: held-out scoring runs outside the budget

    def drive(self, optimizer: torch.optim.Optimizer) -> None:
        """Go on with the same clock on a new optimizer (EarlyBERT's ticket after its search phase): one
        clock object, so the scoring callback keeps pausing the clock that runs."""
        self.optimizer = optimizer
        self.peaks = [g["lr"] for g in optimizer.param_groups]

    def elapsed(self) -> float:
        return self.clock.elapsed()

    def fraction(self) -> float:
        return self.elapsed() / self.seconds

    def factor(self) -> float:
        f = self.fraction()
        up = f / self.warmup if self.warmup > 0 else 1.0
        return max(0.0, min(up, (1.0 - f) / (1.0 - self.warmup)))

    def before_step(self, step: int) -> None:
        self.clock.start()
        k = self.factor()
        for group, peak in zip(self.optimizer.param_groups, self.peaks):
            group["lr"] = peak * max(k, 1e-3)  # not exactly 0 at the first step

    def after_step(self, step: int, logs: dict) -> bool:
        logs["lr"] = self.optimizer.param_groups[0]["lr"]
        return self.fraction() >= 1.0


class StopAtFraction(Callback):
    """Ends a phase once `fraction` of the budget is spent (EarlyBERT's search when no early bird came)."""

    def __init__(self, budget: BudgetSchedule, fraction: float):
        self.budget, self.fraction = budget, fraction

    def after_step(self, step: int, logs: dict) -> bool:
        return self.budget.fraction() >= self.fraction


class HeldOutCurve(Callback):
    """Scores the held-out loss every `every` training seconds; the scoring's own time is paused out of the
    budget, so every arm trains the same seconds however often it is scored."""

    def __init__(self, budget: BudgetSchedule, every: float, score: Callable[[], float]):
        self.budget, self.every, self.score = budget, every, score
        self.points: list[dict] = []
        self.next_at = every

    def after_step(self, step: int, logs: dict) -> bool:
        if self.budget.elapsed() >= self.next_at and self.budget.fraction() < 1.0:
            self.record(step)
        return False

    def record(self, step: int) -> float:
        t = self.budget.elapsed()
        loss = self.budget.clock.paused_for(self.score)
        self.points.append({"train_seconds": t, "step": step, "loss": loss})
        while self.next_at <= t:
            self.next_at += self.every
        return loss


def time_to_loss(points: list[dict], target: float) -> float | None:
    """Training seconds at which the curve first reaches `target` (linear between its two bracketing
    points; None if it never does)."""
    prev = {"train_seconds": 0.0, "loss": float("inf")}
    for p in points:
        if p["loss"] <= target:
            if prev["loss"] == float("inf"):
                return p["train_seconds"]
            w = (prev["loss"] - target) / (prev["loss"] - p["loss"])
            return prev["train_seconds"] + w * (p["train_seconds"] - prev["train_seconds"])
        prev = p
    return None


def plot_loss_curves(res: dict, path) -> None:
    """Held-out MLM loss against training seconds, one line per arm, the baseline's final loss dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for arm, r in res["arms"].items():
        xs = [p["train_seconds"] for p in r["curve"]]
        ys = [p["loss"] for p in r["curve"]]
        t = r.get("seconds_to_base_loss")
        ax.plot(xs, ys, marker=".", linewidth=1, label=f"{arm}" + (f" (reaches it at {t:.0f} s)" if t else ""))
    ax.axhline(res["target"]["loss"], color="black", linestyle="--", linewidth=0.8, label="base's final loss")
    ax.set_xlabel("training wall-clock (s; held-out scoring excluded)")
    ax.set_ylabel("held-out MLM loss (WikiText-2 test blocks)")
    c = res["config"]
    ax.set_title(f"pre-LN BERT {c['layers']}L H{c['hidden']} from scratch, {c['seconds']:.0f} s per arm")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
