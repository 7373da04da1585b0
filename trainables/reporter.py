"""Where a trial's reports go: the one seam between the flow and Ray.

The flow (flow.py) calls a `Reporter` for metrics, checkpoints, the early-bird agreement between ranks
and the data-parallel wrapping of model and loaders; searcher/ray_reporters.py implements it on Ray Train and
Ray Tune, `LocalReporter` for a single process (`tickettune earlybert`, tests, benchmarks).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Protocol

from torch import nn

from .training.device import OneDevice, place


class Reporter(Protocol):
    rank: int
    world_size: int
    takes_checkpoints: bool  # False: nothing is checkpointed and `checkpoint()` is always None

    def report(self, metrics: dict, checkpoint_dir: str | None = None) -> None: ...

    def agree(self, flag: bool) -> bool: ...

    def prepare_model(self, model: nn.Module, find_unused: bool) -> nn.Module: ...

    def prepare_loader(self, loader: Any) -> Any: ...

    def checkpoint(self) -> str | None:
        """The run's latest checkpoint as a local folder (a restarted worker), else None."""

    def checkpoint_dir(self) -> str:
        """A fresh local folder to write a checkpoint into; `report` hands it on and removes it."""


def new_checkpoint_dir(reporter: Reporter) -> str | None:
    """A fresh folder for a checkpoint on rank 0 of a reporter that takes checkpoints; else None."""
    return reporter.checkpoint_dir() if reporter.takes_checkpoints and reporter.rank == 0 else None


def finished_checkpoint(reporter: Reporter) -> str | None:
    """A small marker checkpoint for a trial's last report: Ray keeps one checkpoint per run, so the search
    checkpoint (an untrained ticket, tens of MB per trial) goes once the trial has its trained ticket."""
    directory = new_checkpoint_dir(reporter)
    if directory is not None:
        with open(os.path.join(directory, "finished.json"), "w") as f:
            f.write('{"finished": true}\n')
    return directory


class LocalReporter(OneDevice):
    """Single process: prints a line per report and keeps them. `device`: "auto" (CUDA when torch sees
    it), "cuda" (warns and uses the CPU when there is none) or "cpu"."""

    rank, world_size = 0, 1
    takes_checkpoints = False

    def __init__(self, verbose: bool = True, device: str = "auto"):
        choice = {"auto": "auto", "cuda": True, "cpu": False}
        if device not in choice:
            raise ValueError(f"device={device!r}: expected one of {list(choice)}")
        super().__init__(place(choice[device]))
        self.history: list[dict] = []
        self.verbose = verbose

    def report(self, metrics: dict, checkpoint_dir: str | None = None) -> None:
        self.history.append(dict(metrics))
        if self.verbose:
            keys = ("phase", "step", "loss", "mask_distance", "early_bird", "val_metric", "relative_cost")
            print("  ".join(f"{k}={_fmt(metrics[k])}" for k in keys if k in metrics), flush=True)

    def agree(self, flag: bool) -> bool:
        return flag

    def checkpoint(self) -> str | None:
        return None

    def checkpoint_dir(self) -> str:
        return tempfile.mkdtemp(prefix="tickettune-ckpt-")


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
