"""Where one worker computes: its CUDA device when it was given a GPU and torch sees one, else the CPU.

Ray tells a process which GPUs are its own through ``CUDA_VISIBLE_DEVICES`` and ``ray.get_gpu_ids()``;
torch numbers the visible ones from 0, so the worker's device is the position of its first GPU id in
``CUDA_VISIBLE_DEVICES`` (one id for a Tune trial; every GPU of the node for Ray Train workers, which
share the variable). A worker given a GPU whose torch sees no CUDA (a CPU build of torch, a driver
mismatch, a cluster that declares GPUs it does not have) runs on the CPU and says so in a warning:
the trial stays correct, only slower. Nothing here imports Ray: the searcher passes the ids in.

Batches go to the device from pinned memory (the loaders pin when CUDA is there, data.py) with
``non_blocking=True``, so the copy overlaps the previous step's kernels. TF32 matmuls are switched on for
fp32 when a worker starts on CUDA (precision.enable_tf32), as ``Trainer(tf32=True)`` does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .precision import enable_tf32

log = logging.getLogger("tickettune")


@dataclass(frozen=True)
class Placement:
    """A worker's device and how it was chosen (`reason` goes into logs and reports)."""

    device: torch.device
    gpu_requested: bool
    reason: str

    @property
    def fallback(self) -> bool:
        """Given a GPU, running on the CPU."""
        return self.gpu_requested and self.device.type == "cpu"

    def describe(self) -> dict:
        return {
            "device": str(self.device),
            "gpu_requested": self.gpu_requested,
            "cpu_fallback": self.fallback,
            "device_reason": self.reason,
        }


def cuda_index(gpu_ids: Sequence[Any] | None, visible: str | None) -> int:
    """torch's index of this worker's first GPU: its place in CUDA_VISIBLE_DEVICES (torch renumbers the
    visible devices from 0), the raw id when the variable is unset, 0 when nothing is known."""
    if not gpu_ids:
        return 0
    first = str(gpu_ids[0])
    if visible is None:
        return int(first) if first.isdigit() else 0
    listed = [v.strip() for v in visible.split(",") if v.strip()]
    return listed.index(first) if first in listed else 0


def place(use_gpu: bool | str, gpu_ids: Sequence[Any] | None = None) -> Placement:
    """The device for this process. `use_gpu`: True (the trial was given a GPU), False, or "auto" (CUDA
    when torch sees it: a local run). On CUDA it also makes the device current and turns TF32 on."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if use_gpu == "auto":
        if not torch.cuda.is_available():
            return Placement(torch.device("cpu"), False, "no CUDA device: CPU")
        gpu_ids = gpu_ids or []
    elif not use_gpu:
        return Placement(torch.device("cpu"), False, "no GPU asked for: CPU")
    elif not torch.cuda.is_available():
        reason = (
            f"given GPU(s) {list(gpu_ids or [])} (CUDA_VISIBLE_DEVICES={visible!r}) but torch "
            f"{torch.__version__} sees no CUDA device (built with CUDA {torch.version.cuda}): running on the CPU"
        )
        log.warning("tickettune: %s", reason)
        return Placement(torch.device("cpu"), True, reason)
    index = cuda_index(gpu_ids, visible)
    if index >= torch.cuda.device_count():
        raise RuntimeError(
            f"GPU index {index} (ids {list(gpu_ids or [])}, CUDA_VISIBLE_DEVICES={visible!r}) but "
            f"torch sees {torch.cuda.device_count()} device(s)"
        )
    device = torch.device("cuda", index)
    torch.cuda.set_device(device)
    enable_tf32()
    return Placement(
        device,
        use_gpu is True,
        f"{torch.cuda.get_device_name(device)} (cuda:{index}, CUDA_VISIBLE_DEVICES={visible!r})",
    )


def to_device(batch: Any, device: torch.device) -> Any:
    """Tensors (in dicts, lists, tuples, BatchEncodings) onto `device`; asynchronous from pinned memory."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


class DeviceLoader:
    """Moves each batch to `device`; keeps `len`, `dataset`, the sampler (for set_epoch) and the shuffling
    generator (the flow reseeds it for the ticket phase)."""

    def __init__(self, loader, device: torch.device):
        self.loader, self.device = loader, device
        self.dataset = getattr(loader, "dataset", None)
        self.sampler = getattr(loader, "sampler", None)
        self.generator = getattr(loader, "generator", None)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            yield to_device(batch, self.device)


class OneDevice:
    """`prepare_model` / `prepare_loader` of a single-process Reporter: everything on `placement.device`."""

    def __init__(self, placement: Placement):
        self.placement = placement
        self.device = placement.device

    def prepare_model(self, model: nn.Module, find_unused: bool = False) -> nn.Module:
        return model.to(self.device) if self.device.type != "cpu" else model

    def prepare_loader(self, loader: Any) -> Any:
        return DeviceLoader(loader, self.device) if self.device.type != "cpu" else loader
