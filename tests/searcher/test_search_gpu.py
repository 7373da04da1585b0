"""GPUs shared by trials, on a Ray instance that declares GPUs this machine does not have.

``ray.init(num_gpus=...)`` makes Tune and Train schedule GPU bundles and set CUDA_VISIBLE_DEVICES for
real; torch then sees no CUDA, so every trial shows the CPU fallback (a warning, the CPU, and gloo in
place of nccl for a DDP trial) instead of failing.
"""

import json

import flow_stub
import gpu_probe
import pytest

from tickettune.searcher.export import load_trials
from tickettune.searcher.search import run_search

pytestmark = pytest.mark.ray


@pytest.fixture
def ray_with_gpus(request, monkeypatch):
    import ray

    from tickettune.searcher.ray_session import RAY_ENV_DEFAULTS

    for k, v in RAY_ENV_DEFAULTS.items():  # what run_search's own ray.init would set
        monkeypatch.setenv(k, v)
    gpu_probe.by_value()
    assert flow_stub.ray_is_down()
    ray.init(address="local", num_cpus=2, num_gpus=request.param, include_dashboard=False, log_to_driver=False)
    try:
        yield request.param
    finally:
        ray.shutdown()


def workers_of(trial) -> list[dict]:
    return json.loads(trial.last["workers"])


@pytest.mark.parametrize("ray_with_gpus", [1], indirect=True)
def test_half_a_gpu_each_two_trials_share_one_gpu_and_fall_back_to_the_cpu(tmp_path, ray_with_gpus):
    spec = flow_stub.spec_dict(tmp_path, "half", num_samples=2, gpus_per_trial=0.5)
    res = run_search(spec, flow_fn=gpu_probe.probe_flow, space=flow_stub.space, export=False, verbose=0)
    assert res.plan["executor"] == "inline" and res.plan["gpus_per_worker"] == 0.5
    assert res.plan["max_concurrent_trials"] == 2 and res.statuses == {"TERMINATED": 2}
    a, b = load_trials(tmp_path / "half")
    assert a.last["start"] < b.last["end"] and b.last["start"] < a.last["end"]  # at the same time
    for t in (a, b):
        [w] = workers_of(t)
        assert w["gpu_ids"] == ["0"] and w["cuda_visible"] == "0"  # both on the one GPU
        assert w["cpu_fallback"] and w["device"] == "cpu" and w["batch_device"] == "cpu"


@pytest.mark.slow  # ~50 s here: a Ray Train worker group starts
@pytest.mark.parametrize("ray_with_gpus", [2], indirect=True)
def test_two_gpus_per_trial_ddp_workers_see_both_and_use_gloo_without_cuda(tmp_path, ray_with_gpus):
    spec = flow_stub.spec_dict(tmp_path, "ddp", num_samples=1, gpus_per_trial=2)
    res = run_search(spec, flow_fn=gpu_probe.probe_flow, space=flow_stub.space, export=False, verbose=0)
    plan = res.plan
    assert plan["executor"] == "train" and plan["num_workers"] == 2 and plan["gpus_per_worker"] == 1.0
    assert plan["max_concurrent_trials"] == 1 and res.statuses == {"TERMINATED": 1}
    [trial] = load_trials(tmp_path / "ddp")
    workers = workers_of(trial)
    assert trial.last["world_size"] == 2 and [w["rank"] for w in workers] == [0, 1]
    assert sorted(g for w in workers for g in w["gpu_ids"]) == ["0", "1"]  # one GPU each
    assert {w["cuda_visible"] for w in workers} == {"0,1"}  # Ray Train shares the node's GPUs
    assert all(w["cpu_fallback"] and w["device"] == "cpu" for w in workers)
    assert {w["backend"] for w in workers} == {"gloo"}  # nccl asked for, no CUDA seen: gloo
