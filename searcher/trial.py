"""One Tune trial: the driver function Tune runs for every sampled config.

Train executor (any number of workers): the driver builds and fits a Ray Train ``TorchTrainer`` whose
workers run `train_loop_per_worker` -> `trainables.flow.run_flow` with a `TrainReporter`. Rank 0's
reports reach Tune live through ``TuneReportCallback``. The Train run lives inside the trial's folder
under a name derived from the trial id, so a restarted worker group (``ray.train.FailureConfig``), a
retried driver (``ray.tune.FailureConfig``) and a resumed search all find its last checkpoint.

Inline executor (one worker): the flow runs in the Tune trial process with a `TuneReporter`.

Trial folder (``<experiment>/trial_<id>``, absolute, on storage every node sees)::

    ticket/        the trial's ticket (rank 0 writes it; `export.py` copies it out)
    train_<id>/    the Ray Train run (checkpoints), train executor only
    FAILED.json    a deterministic failure (loss became NaN/inf): retries fail at once instead of
                   training again
    FINISHED.json  the flow's last report, written once it was sent: a finished trial that runs again
                   (its driver was killed before Tune saved it as TERMINATED, its node lost before the
                   trial process returned) sends that report again instead of training again

A trial whose loss diverges raises `TrialDiverged`: the trial ends in ERROR and the search goes on.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from .resources import ResourcePlan

TRIAL_PREFIX = "trial_"
FAILED = "FAILED.json"
FINISHED = "FINISHED.json"
REPLAYED = "replayed"  # the key marking a finished trial's last report sent again
TICKET = "ticket"


class TrialDiverged(RuntimeError):
    """The trial's loss became NaN/inf: deterministic, not worth a retry."""


def trial_dirname(trial) -> str:
    """Tune's `trial_dirname_creator`: short and derived from the id alone (module level: Tune pickles it)."""
    return f"{TRIAL_PREFIX}{trial.trial_id}"


def trial_name(trial) -> str:
    return f"{TRIAL_PREFIX}{trial.trial_id}"


def trial_dir_of(experiment_dir: str | os.PathLike, trial_id: str) -> Path:
    return Path(experiment_dir) / f"{TRIAL_PREFIX}{trial_id}"


def train_run_name(trial_id: str) -> str:
    return f"train_{trial_id}"


# ---------------------------------------------------------------------------------------------- markers


def read_failure(trial_dir: str | os.PathLike) -> dict | None:
    path = Path(trial_dir) / FAILED
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_failure(trial_dir: str | os.PathLike, error: BaseException) -> None:
    trial_dir = Path(trial_dir)
    trial_dir.mkdir(parents=True, exist_ok=True)
    tmp = trial_dir / f".{FAILED}.{os.getpid()}"
    tmp.write_text(json.dumps({"error": type(error).__name__, "message": str(error), "time": time.time()}))
    os.replace(tmp, trial_dir / FAILED)


def read_finished(trial_dir: str | os.PathLike) -> dict | None:
    try:
        return json.loads((Path(trial_dir) / FINISHED).read_text())["report"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None


def write_finished(trial_dir: str | os.PathLike, report: dict) -> None:
    trial_dir = Path(trial_dir)
    tmp = trial_dir / f".{FINISHED}.{os.getpid()}"
    tmp.write_text(json.dumps({"report": report, "time": time.time()}, default=str))
    os.replace(tmp, trial_dir / FINISHED)


def _raise_if_failed(trial_dir: str | os.PathLike) -> None:
    failure = read_failure(trial_dir)
    if failure is not None:
        raise TrialDiverged(
            f"{failure['error']}: {failure['message']} (recorded in {Path(trial_dir) / FAILED}; not retried)"
        )


# ------------------------------------------------------------------------------------------ the flow run


def default_flow_fn() -> Callable:
    from ..trainables.flow import run_flow

    return run_flow


def run_one(payload: dict, reporter) -> Any:
    """Run the flow for one worker (both executors). `payload`: see `_payload`."""
    import torch

    from .console import quiet_trial_logs

    quiet_trial_logs()
    torch.set_num_threads(int(payload["threads"]))
    _raise_if_failed(payload["trial_dir"])
    from ..trainables.config import FlowConfig

    cfg = FlowConfig.from_dict(payload["flow"])
    flow_fn = payload.get("flow_fn") or default_flow_fn()
    try:
        result = flow_fn(cfg, reporter, ticket_dir=payload["ticket_dir"])
    except FloatingPointError as e:  # train.train(): the loss became NaN/inf
        write_failure(payload["trial_dir"], e)
        raise TrialDiverged(str(e)) from e
    last = getattr(reporter, "last", None)
    if reporter.rank == 0 and last and last.get("flow_done"):
        write_finished(payload["trial_dir"], last)
    return result


def train_loop_per_worker(payload: dict) -> None:
    """What each Ray Train worker runs (train executor)."""
    from .ray_reporters import TrainReporter

    reporter = TrainReporter(ticket_dir=payload["ticket_dir"], use_gpu=payload["use_gpu"])
    try:
        run_one(payload, reporter)
    except TrialDiverged:
        if reporter.world_size > 1:
            raise  # other ranks may be inside a collective: let Ray Train tear the group down
        # one worker: return normally so that Ray Train does not restart the worker group for a
        # deterministic failure; the driver finds FAILED.json and fails the trial


def _payload(config: dict, settings: dict, trial_dir: Path, plan: ResourcePlan) -> dict:
    flow = dict(config)
    if flow.get("data_root") is None and settings.get("data_root"):
        flow["data_root"] = settings["data_root"]  # trials run in their own working directories
    if flow.get("compile") and not flow.get("compile_cache_dir"):  # one inductor cache per experiment:
        flow["compile_cache_dir"] = str(Path(settings["experiment_dir"]) / "inductor_cache")  # compiled once
    return {
        "flow": flow,
        "trial_dir": str(trial_dir),
        "ticket_dir": str(trial_dir / TICKET),
        "threads": plan.torch_threads,
        "use_gpu": plan.use_gpu,
        "flow_fn": settings.get("flow_fn"),
    }


def driver(config: dict, settings: dict) -> None:
    """The Tune function trainable (use with ``tune.with_parameters(driver, settings=...)``).

    `settings`: experiment_dir (absolute), plan (`ResourcePlan.to_dict()`), max_failures, data_root,
    flow_fn (None: `run_flow`).
    """
    from ray import tune

    trial_id = tune.get_context().get_trial_id()
    trial_dir = trial_dir_of(settings["experiment_dir"], trial_id)
    trial_dir.mkdir(parents=True, exist_ok=True)
    _raise_if_failed(trial_dir)  # a retry (or a resumed search) of a trial that diverged
    finished = read_finished(trial_dir)
    if finished is not None:  # it ran to its end already: its last report again, nothing trained
        tune.report({**finished, REPLAYED: True})
        return
    plan = ResourcePlan.from_dict(settings["plan"])
    payload = _payload(config, settings, trial_dir, plan)
    if plan.executor == "inline":
        from .ray_reporters import TuneReporter

        run_one(payload, TuneReporter(ticket_dir=payload["ticket_dir"], use_gpu=plan.use_gpu))
        return
    _fit_trainer(payload, settings, plan, trial_id, trial_dir)
    _raise_if_failed(trial_dir)


def _fit_trainer(payload: dict, settings: dict, plan: ResourcePlan, trial_id: str, trial_dir: Path) -> None:
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from .torch_backend import TrialTorchConfig

    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=payload,
        torch_config=TrialTorchConfig(backend=plan.backend),  # nccl, or gloo where CUDA is absent
        scaling_config=ray.train.ScalingConfig(
            num_workers=plan.num_workers, use_gpu=plan.use_gpu, resources_per_worker=plan.worker_resources
        ),
        run_config=ray.train.RunConfig(
            name=train_run_name(trial_id),  # deterministic: a restart finds the checkpoints
            storage_path=str(trial_dir),
            callbacks=[TuneReportCallback()],
            failure_config=ray.train.FailureConfig(
                max_failures=int(settings.get("max_failures", 1)), controller_failure_limit=3
            ),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
        ),
    )
    trainer.fit()
