"""How many trials run at once, and what each one asks Ray for: derived from the cluster's resources.

Two ways to run a trial (the `executor`):

* ``"train"``: the Tune trial is a thin *driver* that fits a Ray Train ``TorchTrainer`` (DDP over
  gloo on CPU, nccl on GPU). Needed for more than one worker per trial. The driver only waits on
  ``fit()``, so it asks for a sliver of a CPU (``DRIVER_CPU``; Tune refuses 0); the workers take the
  rest. Ray Train starts a controller and a worker group per trial: measured ~12-20 s here on 2 CPUs.
* ``"inline"``: one worker, run inside the Tune trial process itself (no worker group to start;
  ~1-4 s per trial, and the process is reused between trials). Same flow, same reports.

``"auto"`` picks inline for one worker per trial and train for more.

Deadlock rule (2 CPUs: a trial holding 1 CPU while its workers wait for another): Tune only sees the
driver's bundle, not the worker group's, so the plan always sets ``max_concurrent_trials`` to the
number of whole trials (driver + all workers) that fit in the cluster, counting CPUs and GPUs alike.

GPUs: ``gpus_per_trial`` (search settings) is a share of one GPU for a one-worker trial (0.5: two
trials on one GPU; Tune's fractional GPUs) or one whole GPU per worker (DDP over nccl). A trial process
on a GPU sees its GPU(s) in ``CUDA_VISIBLE_DEVICES``; trainables/device.py picks the device from it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

DRIVER_CPU = 0.01  # the train-executor driver only waits on fit(); Tune rejects {"CPU": 0}
EXECUTORS = ("auto", "train", "inline")


class ResourceError(ValueError):
    """The cluster cannot run even one trial as asked."""


@dataclass(frozen=True)
class ResourcePlan:
    executor: str  # "train" | "inline" (resolved, never "auto")
    num_workers: int  # Train workers per trial (1 for inline)
    cpus_per_worker: float
    gpus_per_worker: float
    trial_cpus: float  # what Tune reserves for the trial process (driver or inline trial)
    max_concurrent_trials: int
    torch_threads: int  # torch.set_num_threads in each worker
    cluster_cpus: float
    cluster_gpus: float

    @property
    def use_gpu(self) -> bool:
        return self.gpus_per_worker > 0

    @property
    def backend(self) -> str:
        return "nccl" if self.use_gpu else "gloo"

    @property
    def trial_resources(self) -> dict:
        """For ``tune.with_resources``."""
        if self.executor == "inline" and self.use_gpu:
            return {"CPU": self.trial_cpus, "GPU": self.gpus_per_worker}
        return {"CPU": self.trial_cpus}

    @property
    def worker_resources(self) -> dict:
        """For ``ScalingConfig(resources_per_worker=...)`` (train executor)."""
        r = {"CPU": self.cpus_per_worker}
        if self.use_gpu:
            r["GPU"] = self.gpus_per_worker
        return r

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ResourcePlan":
        return cls(**d)

    def describe(self) -> str:
        if self.executor == "train":
            per = (
                f"driver {self.trial_cpus:g} CPU + {self.num_workers} Train worker(s) x "
                f"{self.worker_resources} ({self.backend})"
            )
        else:
            per = f"1 in-process worker {self.trial_resources}"
        return (
            f"cluster {self.cluster_cpus:g} CPU / {self.cluster_gpus:g} GPU; executor={self.executor}; "
            f"per trial: {per}; up to {self.max_concurrent_trials} trial(s) at once; "
            f"torch threads per worker: {self.torch_threads}"
        )


def _floor(x: float) -> int:
    return int(math.floor(x + 1e-9))


def _down(x: float) -> float:
    """Rounded down to Ray's resource granularity (1e-4): k trials of a computed share never exceed the whole."""
    return math.floor(x * 1e4 + 1e-6) / 1e4


def gpus_per_worker_of(gpus_per_trial: float | None, workers_per_trial: int, cluster_gpus: float) -> float:
    """GPUs each worker asks for. None: one whole GPU per worker when the cluster has enough, else none.

    One worker drives one device, so a trial either shares a GPU (one worker, 0 < gpus_per_trial < 1:
    two trials at 0.5 run on one GPU) or has one whole GPU per worker (gpus_per_trial == workers_per_trial,
    DDP over nccl; nccl cannot run two ranks of a group on one GPU)."""
    w = workers_per_trial
    if gpus_per_trial is None:
        return 1.0 if cluster_gpus >= w else 0.0
    g = float(gpus_per_trial)
    if not g >= 0:
        raise ResourceError(f"gpus_per_trial={gpus_per_trial!r} must be >= 0")
    if g == 0:
        return 0.0
    if w == 1 and g > 1:
        raise ResourceError(
            f"gpus_per_trial={gpus_per_trial!r} with workers_per_trial=1: a worker uses one GPU; "
            f"for {g:g} GPUs per trial set workers_per_trial: {g:g} (DDP, one GPU each)"
        )
    if w > 1 and g != w:
        raise ResourceError(
            f"gpus_per_trial={gpus_per_trial!r} with workers_per_trial={w}: each DDP worker needs a "
            f"whole GPU of its own (nccl); use gpus_per_trial: {w}, or 0 for CPUs"
        )
    return g / w


def plan_resources(
    cluster: dict | None = None,
    workers_per_trial: int = 1,
    cpus_per_worker: float | None = None,
    max_concurrent: int | None = None,
    executor: str = "auto",
    gpus_per_trial: float | None = None,
) -> ResourcePlan:
    """A plan that fits `cluster` (``ray.cluster_resources()`` when None; Ray must be initialised then).

    Defaults: one CPU per worker (or one GPU per worker when the cluster has GPUs), and as many trials
    at once as fit. On a 2-CPU machine with one worker per trial that is two trials at once, so one
    trial's start-up overlaps the other's training. With GPUs the GPUs bound the concurrency and those
    trials share the CPUs (`gpus_per_trial` < 1: trials share a GPU; see `gpus_per_worker_of`).
    `cpus_per_worker` may be fractional; `max_concurrent` caps the concurrency (it is lowered to what
    fits, never raised).
    """
    if cluster is None:
        import ray

        cluster = ray.cluster_resources()
    if executor not in EXECUTORS:
        raise ResourceError(f"executor={executor!r}: expected one of {EXECUTORS}")
    if workers_per_trial < 1:
        raise ResourceError(f"workers_per_trial={workers_per_trial!r} must be >= 1")
    if executor == "auto":
        executor = "inline" if workers_per_trial == 1 else "train"
    if executor == "inline" and workers_per_trial != 1:
        raise ResourceError(
            f"executor='inline' runs one worker per trial; workers_per_trial={workers_per_trial} needs executor='train'"
        )
    if cpus_per_worker is not None and not cpus_per_worker > 0:
        raise ResourceError(f"cpus_per_worker={cpus_per_worker!r} must be > 0")
    if max_concurrent is not None and max_concurrent < 1:
        raise ResourceError(f"max_concurrent={max_concurrent!r} must be >= 1")
    cpus = float(cluster.get("CPU", 0.0))
    gpus = float(cluster.get("GPU", 0.0))
    if cpus <= 0:
        raise ResourceError(f"the Ray cluster reports no CPUs ({cluster})")
    w = workers_per_trial

    gpus_per_worker = gpus_per_worker_of(gpus_per_trial, w, gpus)
    if gpus_per_worker > 0 and gpus < w * gpus_per_worker:
        raise ResourceError(
            f"{w} worker(s) x {gpus_per_worker:g} GPU need {w * gpus_per_worker:g} GPUs; the cluster has {gpus:g}"
        )
    gpu_fit = _floor(gpus / (w * gpus_per_worker)) if gpus_per_worker > 0 else None

    driver = DRIVER_CPU if executor == "train" else 0.0
    if cpus_per_worker is None:
        # One CPU per worker, the driver's sliver taken out of it, so that k trials need exactly k*w CPUs.
        per = 1.0 - driver / w
        if executor == "train" and max_concurrent != 1:
            # at least two trials at once: a worker group starts (~15 s) while the other trial trains
            per = min(per, (cpus / 2 - driver) / w)
        if max_concurrent is not None and gpus_per_worker == 0:
            # fewer trials than would fit: each trial's workers get the CPUs the others would have had
            per = max(per, (cpus / max_concurrent - driver) / w)
        if gpu_fit is not None:
            # the GPUs bound how many trials run: those trials share every CPU (data loading, the optimizer)
            n = gpu_fit if max_concurrent is None else min(gpu_fit, max_concurrent)
            per = max(per, (cpus / n - driver) / w)
        per = min(per, (cpus - driver) / w)  # one trial always fits, sharing what there is
        cpus_per_worker = _down(per)
    trial_need = w * cpus_per_worker + driver
    fit = _floor(cpus / trial_need) if trial_need > 0 else 0
    if gpu_fit is not None:
        fit = min(fit, gpu_fit)
    if fit < 1:
        raise ResourceError(
            f"one trial needs {trial_need:g} CPUs ({w} worker(s) x {cpus_per_worker:g}"
            f"{' + driver %g' % driver if driver else ''}); the cluster has {cpus:g}"
        )
    concurrent = fit if max_concurrent is None else min(fit, max_concurrent)
    trial_cpus = driver if executor == "train" else cpus_per_worker
    threads = max(1, _floor(cpus_per_worker + driver / w if executor == "train" else cpus_per_worker))
    return ResourcePlan(
        executor=executor,
        num_workers=w,
        cpus_per_worker=round(cpus_per_worker, 6),
        gpus_per_worker=float(gpus_per_worker),
        trial_cpus=round(trial_cpus, 6),
        max_concurrent_trials=concurrent,
        torch_threads=threads,
        cluster_cpus=cpus,
        cluster_gpus=gpus,
    )
