"""A newcomer's first search, through the command line as they would type it, with W&B offline: a tiny random
BERT loaded from disk (so that its fresh classification head triggers transformers' LOAD REPORT), two
trials of the real flow on SST-2 rows. The console must hold none of the noise a first search used to
print, the process must exit cleanly, and W&B's runs must sit directly in <experiment>/wandb/.

Slow: Ray starts, two trial processes and two W&B actors import torch/transformers/wandb (~1 min idle,
3+ min on this shared 2-core machine)."""

import os
import subprocess
import sys

import pytest
import yaml

pytestmark = [pytest.mark.ray, pytest.mark.slow]

NOISE = {
    "LOAD REPORT": "transformers' load report of the fresh task head",
    "Loading weights": "transformers' progress bar",
    "Exception ignored": "a __del__/atexit traceback at exit",
    "Traceback": "a traceback",
    "TensorBoard": "Tune's TensorBoard hint (into Ray's temp folder)",
    "snapshotting has been triggered": "Tune's experiment snapshot warning",
    "Checkpoint successfully created": "Ray Train's INFO line per checkpoint",
    "A new study created": "Optuna's INFO line",
}


def _config(tmp_path, model_dir) -> str:
    cfg = {
        "name": "first-search",
        "storage": str(tmp_path / "runs"),
        "search": {
            "num_samples": 4,
            "objective": "single",
            "metric": "val_metric",
            "seed": 0,
            "scheduler": "none",
            "workers_per_trial": 1,
            "max_failures": 0,
        },
        "fixed": {
            "model": str(model_dir),
            "task": "sst2",
            "max_train_samples": 32,
            "max_eval_samples": 16,
            "max_length": 16,
            "batch_size": 8,
            "lr": 1.0e-3,
            "search_max_steps": 4,
            "mask_interval": 2,
            "window": 2,
            "ticket_steps": 2,
            "min_ffn": 4,
            "unconverged": "ticket",
        },
        "space": {"head_ratio": {"low": 0.2, "high": 0.5}},
    }
    path = tmp_path / "first.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_first_search_console_is_quiet_and_exits_cleanly(tmp_path, shared_data):
    from tickettune.trainables.testing.random_models import write_random_model

    model_dir = write_random_model("bert", tmp_path / "tiny-bert")
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "TICKETTUNE_DATA": str(shared_data),
    }  # the command runs in tmp_path: ../shared/data is not there
    for k in ("WANDB_DIR", "RAY_ADDRESS", "TRANSFORMERS_VERBOSITY", "TICKETTUNE_QUIET"):
        env.pop(k, None)
    cmd = [
        sys.executable,
        "-m",
        "tickettune.searcher.cli",
        "search",
        _config(tmp_path, model_dir),
        "--num-samples",
        "2",
        "--wandb-project",
        "p",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    found = {text: why for text, why in NOISE.items() if text in out}
    assert not found, f"{found}\n{out}"
    exp = tmp_path / "runs" / "first-search"
    assert "ERROR" not in r.stdout, out
    assert "experiment: " + str(exp) in r.stdout and "[tickettune] exported trial" in r.stdout
    runs = sorted(p.name for p in (exp / "wandb").glob("offline-run-*"))
    assert len(runs) == 3, runs  # one per trial + the export run, one level below the experiment
    assert not (exp / "wandb" / "wandb").exists()
    assert sorted(p.name for p in exp.glob("trial_*/result.json")) == ["result.json"] * 2
    assert not list(exp.glob("trial_*/events.out.tfevents*"))  # no TensorBoard logger
