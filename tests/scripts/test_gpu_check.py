"""scripts/gpu_check.sh where there is no GPU: it says so and exits non-zero, having measured nothing;
with --smoke it runs every step on the CPU at toy sizes (slow: ~3 min here)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_check.sh"


def run_check(out: Path, *args: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    return subprocess.run(
        ["bash", str(SCRIPT), str(out), *args], capture_output=True, text=True, env=env, timeout=timeout
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the behaviour without CUDA")
def test_without_cuda_it_says_so_and_exits_non_zero(tmp_path):
    res = run_check(tmp_path / "out")
    assert res.returncode == 3
    assert "NO CUDA DEVICE: nothing was checked or measured" in res.stderr
    assert (tmp_path / "out" / "summary.txt").read_text().startswith("NO CUDA DEVICE")
    assert json.loads((tmp_path / "out" / "device.json").read_text())["cuda_available"] is False
    assert not (tmp_path / "out" / "ticket_speed.json").exists()


def test_bad_arguments_are_refused(tmp_path):
    res = run_check(tmp_path / "out", "--fast")
    assert res.returncode == 2 and "usage:" in res.stderr


@pytest.mark.slow
def test_smoke_run_on_the_cpu_passes_every_step(tmp_path, shared_data):
    """The bundle made from local files (this machine has `datasets`: no wheels needed)."""
    from tickettune.trainables.model.build import model_path

    bundle = tmp_path / "bundle"
    (bundle / "wheels").mkdir(parents=True)
    shutil.copytree(
        Path(model_path("minilm-l6")), bundle / "tokenizer", ignore=shutil.ignore_patterns("*.safetensors", "1_Pooling")
    )
    for rel in ("glue/SST-2/train.tsv", "glue/SST-2/dev.tsv", "wikitext-2/valid.txt", "wikitext-2/test.txt"):
        (bundle / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_data / rel, bundle / "data" / rel)
    out = tmp_path / "out"
    res = run_check(out, "--smoke", env={"GPU_CHECK_BUNDLE": str(bundle)}, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] and summary["smoke"]
    assert [s["step"] for s in summary["steps"]] == [
        "install",
        "tests",
        "bert",
        "ticket",
        "pld",
        "fastpath",
        "flow",
        "ddp",
    ]
    assert summary["fast_path"]["smoke"] and "eager" in summary["fast_path"]["shapes"]["2x16"]
    assert summary["ddp"]["backend"] == "gloo" and summary["ddp"]["all_reduce_ok"]
    assert summary["flow"]["ticket_files"] and summary["flow"]["device"] == "cpu"
    assert "SMOKE RUN ON THE CPU" in (out / "summary.txt").read_text()
