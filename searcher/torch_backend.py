"""Ray Train's torch process group for a trial's workers: nccl on GPUs, gloo when they see no CUDA.

The plan asks for nccl whenever a trial's workers hold GPU resources (`ResourcePlan.backend`). A worker
given a GPU that torch cannot use (a CPU build of torch, a cluster that declares GPUs it does not have)
runs on the CPU (trainables/device.py), where nccl cannot start: ``init_process_group("nccl")`` fails
with "Distributed package doesn't have NCCL built in", and the trial with it. So before the group is
formed, the workers are asked whether they see CUDA; if any does not, the group uses gloo and the
driver's log says why. The driver cannot tell by itself: it holds no GPU.
"""

from __future__ import annotations

import dataclasses
import logging

from ray.train.torch import TorchConfig
from ray.train.torch.config import _TorchBackend

log = logging.getLogger("tickettune")


def _sees_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


class CudaOrGlooBackend(_TorchBackend):
    def on_start(self, worker_group, backend_config: TorchConfig):
        if backend_config.backend == "nccl":
            seen = worker_group.execute(_sees_cuda)
            if not all(seen):
                log.warning(
                    "tickettune: %d of %d Train worker(s) given GPUs see no CUDA device: their process "
                    "group uses gloo instead of nccl, and they train on the CPU",
                    len(seen) - sum(map(bool, seen)),
                    len(seen),
                )
                backend_config = dataclasses.replace(backend_config, backend="gloo")
        super().on_start(worker_group, backend_config)


@dataclasses.dataclass
class TrialTorchConfig(TorchConfig):
    """`TorchConfig` whose nccl falls back to gloo on workers without CUDA (see the module docstring)."""

    @property
    def backend_cls(self):
        return CudaOrGlooBackend
