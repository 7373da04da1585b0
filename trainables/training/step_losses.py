"""The loop's losses kept on the device and read back in batches: one host sync per interval, not per step.

On a GPU, `loss.item()` every step stalls the host until the step's kernels have run, so the next step's
launches cannot overlap this one's compute. `LossLog` keeps each step's loss as a device scalar and copies
them back together every `every` steps, or as soon as someone reads one (`StepLogs["loss"]`: the flow's
reports, a callback). Divergence is still an error naming the first non-finite step, raised at that read:
with `every` > 1 the weights may have taken the steps in between. On CPU the loop keeps every = 1 (an
`.item()` there waits for nothing).
"""

from __future__ import annotations

import math

import torch


class LossLog:
    """Per-step loss scalars; `out` (the loop's result list) receives them as floats, in step order."""

    def __init__(self, every: int, out: list[float]):
        if every < 1:
            raise ValueError(f"sync_every={every!r} must be >= 1")
        self.every, self.out = every, out
        self._pending: list[tuple[int, torch.Tensor]] = []

    def add(self, step: int, loss: torch.Tensor) -> None:
        self._pending.append((step, loss.detach()))
        if len(self._pending) >= self.every:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        steps, tensors = zip(*self._pending)
        self._pending = []
        for step, value in zip(steps, torch.stack(tensors).tolist()):  # one device->host copy
            if not math.isfinite(value):
                raise FloatingPointError(f"loss is {value} at step {step}: training diverged")
            self.out.append(value)

    def last(self) -> float:
        self.flush()
        return self.out[-1]


class StepLogs(dict):
    """The `logs` a callback gets: "loss" is read back from the device only when asked for."""

    def __init__(self, losses: LossLog, **items):
        super().__init__(**items)
        self._losses = losses

    def __missing__(self, key: str):
        if key != "loss":
            raise KeyError(key)
        value = self["loss"] = self._losses.last()
        return value

    def get(self, key: str, default=None):
        return self[key] if key in self or key == "loss" else default
