"""What a search prints on the console: our own lines and Tune's progress by default, the libraries' chatter
only with ``tickettune search -v``.

Verbosity, as ``run_search(verbose=...)`` takes it: 0 silent (tests), 1 quiet (the CLI's default), 2 verbose
(``-v``). Below 2, every switch is one the libraries offer themselves:

* transformers: ``TRANSFORMERS_VERBOSITY=error`` (hides the "LOAD REPORT" table a freshly initialised task
  head causes) and ``HF_HUB_DISABLE_PROGRESS_BARS=1`` (no "Loading weights" bar), in the trial processes;
* Ray: ``ray.init(logging_level="WARNING")`` for the driver's Ray loggers (no "Started a local Ray
  instance", no "Wrote the latest version of all result files"); in the processes that run a trial's flow,
  the "ray.train" and "ray.tune" loggers at WARNING (no "Checkpoint successfully created" per report),
  told by ``TICKETTUNE_QUIET=1`` (``ray.LoggingConfig`` would do it job-wide, but it is experimental and
  appends ids and timestamps to every remaining log line);
* Tune: ``TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S=0`` (the "snapshotting has been
  triggered multiple times" warning: ``num_to_keep=1`` forces a snapshot at every trial checkpoint, on
  purpose) and ``TUNE_WARN_THRESHOLD_S`` raised to 10 s (Tune warns when one of its steps takes > 0.5 s,
  as starting a W&B logging actor does on a busy 2-core machine; read when ``ray.tune`` is imported);
* Optuna: ``optuna.logging.set_verbosity(WARNING)`` ("A new study created in memory").

Independent of verbosity (so that the experiment's files do not depend on it): Tune's automatic loggers are
replaced by explicit CSV + JSON loggers (`tune_loggers`), with ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1``
while Tune runs: no TensorBoard logger, hence no "To visualize your results with TensorBoard" hint that
pointed into Ray's temporary folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

SILENT, QUIET, VERBOSE = 0, 1, 2

QUIET_ENV = "TICKETTUNE_QUIET"
QUIET_WORKER_ENV = {  # the trial processes (inherited from the driver on a local Ray, runtime_env on a cluster)
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    QUIET_ENV: "1",
}
RAY_LOGGERS = ("ray.train", "ray.tune")  # quieted in the trial processes
QUIET_DRIVER_ENV = {
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "TUNE_WARN_THRESHOLD_S": "10",
}
NO_AUTO_LOGGERS = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}
TUNE_LOGGERS = ("csv", "json")  # recorded in tickettune_search.json: resume knows they are in the run config


def quiet(verbose: int) -> bool:
    return verbose < VERBOSE


def worker_env(verbose: int) -> dict[str, str]:
    return dict(QUIET_WORKER_ENV) if quiet(verbose) else {}


def prepare_driver(verbose: int) -> None:
    """Before Ray (and ray.tune) is imported: the driver's own switches. A value the user set wins."""
    if not quiet(verbose):
        return
    for k, v in {**QUIET_DRIVER_ENV, **QUIET_WORKER_ENV}.items():
        os.environ.setdefault(k, v)


def quiet_optuna(verbose: int) -> None:
    if quiet(verbose):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)


def ray_logging_level(verbose: int) -> str:
    """``ray.init(logging_level=...)``: Ray's loggers in the driver."""
    return "WARNING" if quiet(verbose) else "INFO"


def quiet_trial_logs() -> None:
    """In a process that runs a trial's flow: Ray Train/Tune's INFO lines off when the search is quiet."""
    if os.environ.get(QUIET_ENV) == "1":
        for name in RAY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def tune_verbosity(verbose: int) -> int:
    """``tune.RunConfig(verbose=...)``: 0 nothing, 1 status tables and each trial's start and end, 2 every
    result too."""
    return min(verbose, VERBOSE)


def tune_loggers() -> list:
    """The result files Tune writes into every trial folder (``result.json`` is what `export` reads)."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    return [CSVLoggerCallback(), JsonLoggerCallback()]


@contextlib.contextmanager
def scoped_env(values: dict[str, str]) -> Iterator[None]:
    """Set `values` in os.environ for the block, then restore what was there."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
