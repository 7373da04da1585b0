"""docs/cluster/: the Ray cluster launcher YAML against the schema Ray ships (ray/autoscaler/ray-schema.json), the
KubeRay RayJob's structure, and in both the command that derives the search from spaces/demo.yaml, run for real:
the space it writes loads, and the resource plan for those nodes puts each DDP worker on a node of its own with
the trial's driver beside it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tickettune.searcher.resources import DRIVER_CPU, plan_resources
from tickettune.spaces import load_spec

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "docs" / "cluster" / "ray-cluster.yaml"
RAYJOB = ROOT / "docs" / "cluster" / "rayjob.yaml"


def ray_schema() -> dict:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def start_flags(command: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"--num-(cpus|gpus)=(\d+)", command)}


def check_plan(space: Path, node_cpus: float, node_gpus: float, nodes: int, head_cpus: float = 0) -> None:
    """The derived space loads, and its plan fits these nodes one worker per node, driver beside it."""
    spec = load_spec(space)
    s = spec.search
    cluster = {"CPU": head_cpus + nodes * node_cpus, "GPU": nodes * node_gpus}
    plan = plan_resources(
        cluster, s.workers_per_trial, s.cpus_per_worker, s.max_concurrent, s.executor, s.gpus_per_trial
    )
    assert plan.executor == "train" and plan.num_workers == 2 and plan.backend == "nccl"
    assert plan.gpus_per_worker == node_gpus == 1  # one whole GPU per worker: the workers span two nodes
    assert plan.cpus_per_worker + DRIVER_CPU <= node_cpus  # the trial's driver fits beside a worker
    assert plan.max_concurrent_trials == nodes // plan.num_workers
    assert plan.torch_threads == int(plan.cpus_per_worker)


def test_the_launcher_yaml_is_valid_for_ray(tmp_path):
    import jsonschema
    from ray.autoscaler._private.util import validate_config

    config = yaml.safe_load(LAUNCHER.read_text())
    jsonschema.validate(config, ray_schema())
    validate_config(config)  # Ray's own check (the schema and the fields `ray up` fills in)
    types = config["available_node_types"]
    head, gpu = types[config["head_node_type"]], types["gpu_worker"]
    assert head["resources"] == {"CPU": 0} and "--num-cpus=0" in " ".join(config["head_start_ray_commands"])
    assert start_flags(" ".join(config["worker_start_ray_commands"])) == {"cpus": 4, "gpus": 1}
    assert gpu["resources"] == {"CPU": 4, "GPU": 1} and gpu["min_workers"] == 2

    (derive,) = config["head_setup_commands"]
    out = tmp_path / "cluster-demo.yaml"
    command = (
        derive.replace("python3.11", sys.executable)
        .replace("~/tickettune/spaces/demo.yaml", str(ROOT / "spaces" / "demo.yaml"))
        .replace("~/cluster-demo.yaml", str(out))
    )
    subprocess.run(["bash", "-c", command], check=True, timeout=60)
    check_plan(out, gpu["resources"]["CPU"], gpu["resources"]["GPU"], gpu["min_workers"])


def test_the_launcher_yaml_fails_the_schema_when_broken():
    """The schema does reject things (so the check above means something): a node type without node_config."""
    import jsonschema

    config = yaml.safe_load(LAUNCHER.read_text())
    del config["available_node_types"]["gpu_worker"]["node_config"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, ray_schema())


def test_the_rayjob_manifest(tmp_path):
    job = yaml.safe_load(RAYJOB.read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert set(spec) <= {
        "entrypoint",
        "runtimeEnvYAML",
        "shutdownAfterJobFinishes",
        "ttlSecondsAfterFinished",
        "rayClusterSpec",
        "submitterPodTemplate",
        "activeDeadlineSeconds",
        "backoffLimit",
    }
    env = yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]
    assert env["WANDB_MODE"] == "offline" and all(isinstance(v, str) for v in env.values())
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"].startswith("2.60")
    head = cluster["headGroupSpec"]
    (group,) = cluster["workerGroupSpecs"]
    assert all(isinstance(v, str) for g in (head, group) for v in g["rayStartParams"].values())  # KubeRay: strings
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    (worker,) = group["template"]["spec"]["containers"]
    limits = worker["resources"]["limits"]
    assert worker["resources"]["requests"] == limits
    assert group["rayStartParams"] == {"num-cpus": limits["cpu"], "num-gpus": limits["nvidia.com/gpu"]}

    claims = set()
    for g in (head, group):
        pod = g["template"]["spec"]
        (c,) = pod["containers"]
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        assert mounts == {"shared": "/mnt/tickettune"}
        claims |= {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if v["name"] == "shared"}
    assert len(claims) == 1  # every pod mounts the same volume: storage every node sees

    entry = spec["entrypoint"]
    assert "tickettune search cluster-demo.yaml" in entry and "cd /mnt/tickettune" in entry
    inner = re.fullmatch(r"bash -c '(.*)'", entry, re.S)[1]
    command = (
        inner.replace("cd /mnt/tickettune", f"cd {tmp_path}")
        .replace("python -c", f"{sys.executable} -c")
        .replace("/opt/tickettune/spaces/demo.yaml", str(ROOT / "spaces" / "demo.yaml"))
        .replace("&& tickettune search cluster-demo.yaml", "")
    )
    subprocess.run(["bash", "-c", command], check=True, timeout=60)
    check_plan(tmp_path / "cluster-demo.yaml", float(limits["cpu"]), float(limits["nvidia.com/gpu"]), group["replicas"])
