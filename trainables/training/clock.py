"""Training wall-clock with scoring paused out: what every time figure of tickettune means.

A dev evaluation in the middle of training is not training. The flow, the baseline trial and the benchmarks
all time training the same way: one clock, started at the first step, with each scoring run timed and
subtracted.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


class TrainingClock:
    def __init__(self, offset: float = 0.0):
        self.offset = offset  # training seconds already spent before this clock started
        self.started: float | None = None
        self.paused = 0.0  # seconds spent scoring since the start
        self.frozen: float | None = None

    def start(self) -> "TrainingClock":
        if self.started is None:
            self.started = time.perf_counter()
        return self

    def elapsed(self) -> float:
        """Training seconds so far (the offset included, scoring excluded)."""
        if self.frozen is not None:
            return self.frozen
        if self.started is None:
            return self.offset
        return self.offset + time.perf_counter() - self.started - self.paused

    def stop(self) -> float:
        """Training is over: the clock keeps this reading (a final evaluation is not training)."""
        self.frozen = self.elapsed()
        return self.frozen

    def paused_for(self, fn: Callable[[], T]) -> T:
        """`fn()`, its time kept out of the training seconds."""
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self.paused += time.perf_counter() - t0
