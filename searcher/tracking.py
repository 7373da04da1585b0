"""Weights & Biases, only when a search names a project (without one, nothing here is imported).

* Every trial is one W&B run (``WandbLoggerCallback(project, group=<experiment name>)``): its config and
  every report — loss, mask distances, early_bird, val_metric, relative_cost, early_bird_step.
* The exported ticket(s) go up as a W&B model artifact from a last ``export`` run in the same group.
* Offline (``WANDB_MODE=offline``, no API key needed) the runs are written to ``<experiment>/wandb/``
  (W&B writes into ``<WANDB_DIR>/wandb``, so WANDB_DIR is the experiment folder unless already set);
  ``wandb sync`` uploads them later.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

WANDB_SUBDIR = "wandb"


def wandb_dir(experiment_dir: str | os.PathLike) -> Path:
    """Where the runs of a search land (with WANDB_DIR unset)."""
    return Path(experiment_dir) / WANDB_SUBDIR


def prepare_wandb_env(experiment_dir: str | os.PathLike) -> Path:
    """WANDB_DIR -> <experiment> unless set (before Ray starts, so that its workers inherit it); returns the
    folder the runs land in, ``<WANDB_DIR>/wandb``."""
    root = Path(os.environ.get("WANDB_DIR") or experiment_dir).absolute()
    root.mkdir(parents=True, exist_ok=True)
    os.environ["WANDB_DIR"] = str(root)
    os.environ.setdefault("WANDB_SILENT", "true")
    return root / WANDB_SUBDIR


def _init_kwargs() -> dict:
    kw = {"dir": os.environ["WANDB_DIR"]} if os.environ.get("WANDB_DIR") else {}
    if os.environ.get("WANDB_MODE"):
        kw["mode"] = os.environ["WANDB_MODE"]
    return kw


def wandb_callback(project: str, group: str, experiment_dir: str | os.PathLike):
    """The Tune callback: one W&B run per trial, grouped by experiment (`wandb_callback.WandbCallback`)."""
    from .wandb_callback import WandbCallback

    prepare_wandb_env(experiment_dir)
    return WandbCallback(project=project, group=group, log_config=False, excludes=["ticket_dir"], **_init_kwargs())


def _artifact_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "ticket"


def log_ticket_artifact(
    project: str, group: str, path: str | os.PathLike, experiment_dir: str | os.PathLike, exported: list[dict]
) -> str:
    """Log the exported ticket folder (or Pareto folder) as a W&B model artifact; returns its name."""
    import wandb

    prepare_wandb_env(experiment_dir)
    name = _artifact_name(f"{group}-{Path(path).name}")
    run = wandb.init(
        project=project,
        group=group,
        job_type="export",
        name=f"{group}-export",
        reinit="finish_previous",
        config={"experiment": str(experiment_dir)},
        **_init_kwargs(),
    )
    try:
        art = wandb.Artifact(
            name,
            type="model",
            metadata={"trials": [{k: e[k] for k in ("trial_id", "metrics", "early_bird_step")} for e in exported]},
        )
        art.add_dir(str(path))
        run.log_artifact(art)
        if exported:
            run.summary.update({f"best/{k}": v for k, v in exported[0]["metrics"].items()})
    finally:
        run.finish()
    return name
