"""A flow for the Ray GPU-placement tests: it trains nothing, it reports where its worker was put.

Each worker prepares a small model through its reporter (as `run_flow` does) and reports what Ray
gave it (CUDA_VISIBLE_DEVICES, ray.get_gpu_ids()), where the model landed, whether it fell back to the
CPU, the torch process group's backend, and when it ran (to see trials overlap). With several workers
rank 0 gathers every rank's view (only rank 0's report reaches Tune).
"""

from __future__ import annotations

import json
import os
import time


def probe_flow(cfg, reporter, ticket_dir: str | None = None):
    import ray
    import torch
    import torch.distributed as dist

    start = time.time()
    model = reporter.prepare_model(torch.nn.Linear(4, 2), find_unused=False)
    loader = reporter.prepare_loader(torch.utils.data.DataLoader(torch.ones(4, 4), batch_size=2))
    batch = next(iter(loader))
    model(batch).sum().backward()  # DDP's gradient all-reduce, when there is a group
    placement = getattr(reporter, "placement", None)
    mine = {
        "rank": reporter.rank,
        "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "gpu_ids": [str(i) for i in ray.get_gpu_ids()],
        "device": str(next(model.parameters()).device),
        "batch_device": str(batch.device),
        "cpu_fallback": bool(placement and placement.fallback),
        "backend": dist.get_backend() if dist.is_initialized() else None,
    }
    workers = [mine]
    if dist.is_initialized() and dist.get_world_size() > 1:
        workers = [None] * dist.get_world_size()
        dist.all_gather_object(workers, mine)
    time.sleep(float(os.environ.get("TICKETTUNE_PROBE_SLEEP", "2")))  # long enough for trials to overlap
    reporter.report(
        {
            "phase": "done",
            "step": 1,
            "done": True,
            "val_metric": 0.5,
            "relative_cost": 0.5,
            "workers": json.dumps(workers),
            "start": start,
            "end": time.time(),
            "world_size": reporter.world_size,
        }
    )
    return 0.5


def by_value() -> None:
    """Ship this module to Ray workers by value (the tests folder is not on their path)."""
    import sys

    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
