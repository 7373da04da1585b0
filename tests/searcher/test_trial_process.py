"""What a trial's process is given, read from inside two concurrent trials: the plan's torch threads, and the
priority of any other process. Ray starts its workers at nice 15 (its `worker_niceness`), where a trial yields
its core to every other process on the host while HF's Trainer runs at nice 0; a local instance started by the
search gives its workers 0 (ray_session.RAY_ENV_DEFAULTS)."""

import os
import sys

import flow_stub
import pytest

from tickettune.searcher.export import load_trials
from tickettune.searcher.search import run_search

pytestmark = pytest.mark.ray


def facts_flow(cfg, reporter, ticket_dir: str | None = None):
    import threading

    import torch

    reporter.report(
        {
            "phase": "done",
            "step": 1,
            "done": True,
            "val_metric": 0.5,
            "relative_cost": 0.5,
            "nice": os.nice(0),
            "torch_threads": torch.get_num_threads(),
            "omp_threads": os.environ.get("OMP_NUM_THREADS"),
            "main_thread": threading.current_thread() is threading.main_thread(),
        }
    )
    return 0.5


def test_trials_run_at_the_drivers_priority_with_the_plans_threads(tmp_path):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # tests/ is not on the workers' path
    assert flow_stub.ray_is_down()
    spec = flow_stub.spec_dict(tmp_path, "facts", num_samples=2, max_concurrent=2, cpus_per_worker=1)
    res = run_search(spec, flow_fn=facts_flow, space=flow_stub.space, export=False, verbose=0, num_cpus=2)
    assert res.statuses == {"TERMINATED": 2} and res.plan["torch_threads"] == 1
    for t in load_trials(tmp_path / "facts"):
        assert t.last["nice"] == os.nice(0)  # not Ray's 15: a trial is the work, like an HF process
        assert t.last["torch_threads"] == res.plan["torch_threads"] and t.last["omp_threads"] == "1"
        assert not t.last["main_thread"]  # Tune's function trainable: the flow runs in a thread of its own
