"""The driver's Ray session: environment defaults, starting or joining Ray (its token auth chosen by
cluster_auth.py), and shutting it down; `start_driver` is what a new and a resumed search both do first."""

from __future__ import annotations

import os
from pathlib import Path

from . import cluster_auth, console
from .storage import check_shared

# Set before a local Ray instance starts (workers inherit them); also sent to a remote cluster through
# the job's runtime_env. Measured here (2 CPUs, busy machine), a Ray Train trial with an empty loop:
# fit() 15.5-25 s + 4-6 s until Tune starts the next trial -> fit() 12.8-15.9 s and no gap (these
# variables + reuse_actors, which is on unless a scheduler may stop trials). What is left is process
# start-up: controller actor ~5 s, worker actors
# ~4.5 s, train context (torch process group) ~2.5 s.
RAY_ENV_DEFAULTS = {
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",  # fit() returns ~1 s after the loop ends, not 2-5 s
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",  # one actor (process) less per trial
    "RAY_TRAIN_METRICS_ENABLED": "0",  # no Prometheus metrics callbacks per trial
    "TOKENIZERS_PARALLELISM": "false",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",  # no progress bars from every worker in the driver's log
    # Ray starts its workers at nice 15, so a trial yields its core to any other process on the host (an HF
    # Trainer process runs at 0): trials at 0. Read by a local instance's raylet; a cluster's: `ray start`'s env
    "RAY_worker_niceness": "0",
}
DRIVER_ENV_DEFAULTS = {
    "TUNE_GLOBAL_CHECKPOINT_S": "5",  # experiment state saved every 5 s (default 10+): a kill loses less
}


def connect(
    address: str | None = None,
    num_cpus: int | None = None,
    env: dict | None = None,
    verbose: bool = True,
    logging_level: int | str = "INFO",
    auth: str | None = None,
) -> bool:
    """Make sure Ray is up. Returns True if this call started it (the caller shuts it down).

    address None and no $RAY_ADDRESS: a new local instance (``address="local"``: never attaches to a
    ``ray start`` cluster by accident). Otherwise join that cluster, with the token-auth mode `auth`
    (``--ray-auth``), $RAY_AUTH_MODE or the cluster's own (`cluster_auth.choose`).
    verbose False: the workers' output does not reach this console (``log_to_driver``);
    logging_level: of Ray's loggers in this process (see console.py).
    """
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    env_vars = {**RAY_ENV_DEFAULTS, **(env or {})}
    if address in (None, "local"):
        for k, v in env_vars.items():
            os.environ.setdefault(k, v)  # the raylet and every worker inherit these
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=True,
            log_to_driver=verbose,
            configure_logging=True,
            logging_level=logging_level,
        )
        return True
    cluster_auth.choose(address, auth)
    env_vars = {k: os.environ.get(k, v) for k, v in env_vars.items()}
    for k in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DIR", "TICKETTUNE_DATA", "HF_HUB_OFFLINE"):
        if k in os.environ:
            env_vars.setdefault(k, os.environ[k])
    try:
        ray.init(
            address=address, runtime_env={"env_vars": env_vars}, log_to_driver=verbose, logging_level=logging_level
        )
    except Exception as e:
        raise (cluster_auth.explain(e, address) or e) from e
    return True


def shutdown() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def start_driver(
    spec, exp_dir: Path, address: str | None, num_cpus: int | None, verbose: int, auth: str | None = None
) -> bool:
    """The driver's environment (Tune's settings, W&B's folder) and its Ray connection, for a new or a resumed
    search; True when it started a local Ray instance (to be shut down at the end). On a cluster of several
    nodes, every node must see the experiment folder (storage.py), else nothing starts."""
    for k, v in DRIVER_ENV_DEFAULTS.items():
        os.environ.setdefault(k, v)
    if spec.search.wandb_project:
        from .tracking import prepare_wandb_env

        prepare_wandb_env(exp_dir)
    started = connect(
        address,
        num_cpus=num_cpus,
        env=console.worker_env(verbose),
        verbose=verbose > 0,
        logging_level=console.ray_logging_level(verbose),
        auth=auth,
    )
    try:
        check_shared(exp_dir, verbose=verbose)
    except BaseException:
        if started:
            shutdown()
        raise
    return started
