"""Reporters: how `trainables.flow.run_flow` talks to Ray (the flow's `Reporter` protocol).

* `TrainReporter` runs inside a Ray Train worker (train executor): `ray.train.report` (a barrier:
  every rank calls it the same number of times), checkpoints through `ray.train.Checkpoint`, the
  early-bird stop agreed with `ray.train.collective.broadcast_from_rank_zero`, DDP through
  `ray.train.torch.prepare_model` / `prepare_data_loader`.
* `TuneReporter` runs inside the Tune trial process itself (inline executor, one worker):
  `ray.tune.report`, `ray.tune.Checkpoint`.

Both rename the flow's ``done`` key to ``flow_done``: Tune reads ``done: True`` in a result as "stop
this trial" and kills the trial's actor at once, which with the train executor leaves Ray Train's worker
group to be cleaned up behind Tune's back (the 2.60 hang). They also add ``ticket_dir`` to the final
report of a trial that saved a ticket.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from typing import Any

RESERVED = {"done": "flow_done"}  # Tune-reserved result keys the flow uses -> what we send instead


def clean_metrics(metrics: dict, ticket_dir: str | None = None) -> dict:
    """Tune-safe copy: reserved keys renamed, numpy/torch scalars made plain, ticket_dir added at the end."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        key = RESERVED.get(key, key)
        if hasattr(value, "item") and callable(value.item):
            try:
                value = value.item()
            except (ValueError, RuntimeError):  # not a scalar: leave it
                pass
        out[key] = value
    if ticket_dir and out.get("flow_done") and os.path.isfile(os.path.join(ticket_dir, "ticket.json")):
        out["ticket_dir"] = ticket_dir
    return out


def is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _RayReporter:
    """What both Ray reporters share: a report with an optional checkpoint (our temporary copy removed once Ray
    has persisted it), the latest checkpoint as a local copy, fresh checkpoint folders."""

    takes_checkpoints = True
    rank: int
    ticket_dir: str | None

    def _send(self, metrics: dict, checkpoint_dir: str | None) -> None:
        raise NotImplementedError

    def _latest(self):
        raise NotImplementedError

    def report(self, metrics: dict, checkpoint_dir: str | None = None) -> None:
        sent = clean_metrics(metrics, self.ticket_dir if self.rank == 0 else None)
        self._send(sent, checkpoint_dir)
        self.last = sent  # trial.py keeps a finished trial's last report (FINISHED.json)
        self.reports += 1
        if (
            checkpoint_dir is not None
            and os.path.isdir(checkpoint_dir)
            and os.path.basename(checkpoint_dir).startswith("tickettune-ckpt-")
        ):
            shutil.rmtree(checkpoint_dir, ignore_errors=True)  # persisted by Ray: our temp copy can go

    def checkpoint(self) -> str | None:
        """The latest checkpoint of this run (after a worker restart), as a local directory; else None."""
        latest = self._latest()
        return None if latest is None else latest.to_directory(tempfile.mkdtemp(prefix="tickettune-resume-"))

    def checkpoint_dir(self) -> str:
        """A fresh local directory to write a checkpoint into (removed after it is reported)."""
        return tempfile.mkdtemp(prefix="tickettune-ckpt-")


class TrainReporter(_RayReporter):
    """`Reporter` for a Ray Train worker (call it inside `train_loop_per_worker`)."""

    def __init__(self, ticket_dir: str | None = None, use_gpu: bool = False):
        import ray
        import ray.train

        from ..trainables.training.device import place

        ctx = ray.train.get_context()
        self.rank: int = ctx.get_world_rank()
        self.world_size: int = ctx.get_world_size()
        self.ticket_dir = ticket_dir
        self.placement = place(use_gpu, ray.get_gpu_ids())  # the same device ray.train.torch.get_device() picks
        self.use_gpu = self.placement.device.type == "cuda"  # given a GPU that torch cannot see: CPU
        self.reports = 0

    def _send(self, metrics: dict, checkpoint_dir: str | None) -> None:
        import ray.train

        checkpoint = None
        if checkpoint_dir is not None and self.rank == 0:
            checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir)
        ray.train.report(metrics, checkpoint=checkpoint)

    def _latest(self):
        import ray.train

        return ray.train.get_checkpoint()

    def agree(self, flag: bool) -> bool:
        if self.world_size == 1:
            return bool(flag)
        from ray.train.collective import broadcast_from_rank_zero

        return bool(broadcast_from_rank_zero(bool(flag)))

    def prepare_model(self, model, find_unused: bool = False):
        if self.world_size == 1 and not self.use_gpu:
            return model
        import ray.train.torch

        # the device explicitly: given a GPU that torch cannot see, Ray would still move the model to "cuda"
        return ray.train.torch.prepare_model(
            model,
            move_to_device=self.placement.device,
            parallel_strategy_kwargs={"find_unused_parameters": find_unused},
        )

    def prepare_loader(self, loader):
        if self.world_size == 1 and not self.use_gpu:
            return loader
        import ray.train.torch

        return ray.train.torch.prepare_data_loader(
            loader, add_dist_sampler=self.world_size > 1, move_to_device=self.use_gpu
        )


class TuneReporter(_RayReporter):
    """`Reporter` for a trial that runs inside the Tune trial process (one worker, no Ray Train): model and
    batches on the trial's GPU (Tune gave the process its share of one), else on the CPU."""

    rank, world_size = 0, 1

    def __init__(self, ticket_dir: str | None = None, use_gpu: bool = False):
        import ray

        from ..trainables.training.device import OneDevice, place

        self.placement = place(use_gpu, ray.get_gpu_ids() if use_gpu else None)
        self._device = OneDevice(self.placement)
        self.device = self.placement.device
        self.ticket_dir = ticket_dir
        self.use_gpu = self.device.type == "cuda"
        self.reports = 0

    def _send(self, metrics: dict, checkpoint_dir: str | None) -> None:
        from ray import tune

        checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir is not None else None
        tune.report(metrics, checkpoint=checkpoint)

    def _latest(self):
        from ray import tune

        return tune.get_checkpoint()

    def agree(self, flag: bool) -> bool:
        return bool(flag)

    def prepare_model(self, model, find_unused: bool = False):
        return self._device.prepare_model(model)

    def prepare_loader(self, loader):
        return self._device.prepare_loader(loader)
