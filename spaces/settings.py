"""How a search runs: the `search:` section, as a pydantic model."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

MODES = ("max", "min")
# Every report a trial sends carries these (flow.run_flow's `send`): Tune's strict metric check
# fails on any other key at some report, so only these can drive the searcher or the scheduler.
METRICS = ("val_metric", "relative_cost", "relative_time")


class SearchSettings(BaseModel):
    """How the search runs. `metric`/`mode` are a str for objective "single", lists for "multi" (the
    shapes `ray.tune.search.optuna.OptunaSearch` takes); a `mode` not given is inferred at load time."""

    model_config = ConfigDict(extra="forbid", strict=True)

    num_samples: int = Field(8, ge=1)
    objective: Literal["single", "multi"] = "single"
    # not given: val_metric for objective single, [val_metric, relative_cost] for multi
    metric: str | list | None = Field(None, validate_default=True)
    mode: str | list | None = None
    seed: int | None = 0
    scheduler: Annotated[Literal["asha", "none"], BeforeValidator(lambda v: "none" if v is None else v)] = "asha"
    # what ASHA compares at its rungs; null: the first metric. val_loss (the dev loss, minimised) where the
    # metric is flat early on (CoLA's MCC is 0 for every trial that still predicts one class)
    rung_metric: Literal["val_loss"] | None = None
    # ASHA's first rung, as a fraction of the largest ticket budget (Ray's grace_period = first_rung * max_t), and
    # its reduction factor (rungs at first_rung * max_t * reduction_factor^k; about 1/reduction_factor of the
    # trials judged at a rung go on). Smaller and larger: cheaper stops, earlier and on less signal.
    first_rung: float = Field(0.25, gt=0, le=0.5)
    reduction_factor: int = Field(2, ge=2)
    max_concurrent: int | None = Field(None, ge=1)
    workers_per_trial: int = Field(1, ge=1)
    cpus_per_worker: float | None = Field(None, gt=0)
    # None: a GPU per worker where the cluster has them; 0.5: two trials per GPU; N > 1: N DDP workers
    gpus_per_trial: float | None = Field(
        None, ge=0, description="a number >= 0 or null (null: one GPU per worker where the cluster has GPUs)"
    )
    max_failures: int = Field(1, ge=-1)
    wandb_project: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] | None = None
    executor: Literal["auto", "train", "inline"] = "auto"  # train: a TorchTrainer per trial; auto: by workers
    baseline: bool = False  # one extra trial: the dense run of the same budget, no search (the reference point)
    # points the sampler tries first ({searched key: value}, see enqueue.py)
    enqueue: list | None = Field(None, description="a list of mappings (searched key -> value)")

    @property
    def multi(self) -> bool:
        return self.objective == "multi"

    @property
    def total_trials(self) -> int:
        """Tune's num_samples: the sampled trials, plus the dense baseline when asked for."""
        return self.num_samples + int(self.baseline)

    @property
    def metrics(self) -> list[str]:
        return list(self.metric) if isinstance(self.metric, list) else [self.metric]

    @property
    def modes(self) -> list[str]:
        return list(self.mode) if isinstance(self.mode, list) else [self.mode]

    @property
    def primary_metric(self) -> str:
        """The one metric a scheduler (ASHA) and `get_best_result` use: the first."""
        return self.metrics[0]

    @property
    def primary_mode(self) -> str:
        return self.modes[0]

    def first_rung_steps(self, max_t: int) -> int:
        """ASHA's grace period for a budget of max_t steps (rounded down, at least 1)."""
        return max(1, int(max_t * self.first_rung + 1e-9))

    @property
    def rungs_judge(self) -> tuple[str, str]:
        """(metric, mode) that ASHA compares at its rungs."""
        return (self.rung_metric, "min") if self.rung_metric else (self.primary_metric, self.primary_mode)

    # -- validation -----------------------------------------------------------------------------------
    @model_validator(mode="before")
    @classmethod
    def _workers_from_gpus(cls, raw: Any) -> Any:
        """`gpus_per_trial: N` (a whole N > 1) without `workers_per_trial` means N DDP workers, a GPU each."""
        g = raw.get("gpus_per_trial") if isinstance(raw, dict) else None
        whole = isinstance(g, (int, float)) and not isinstance(g, bool) and g > 1 and g == int(g)
        return {**raw, "workers_per_trial": int(g)} if whole and "workers_per_trial" not in raw else raw

    @field_validator("gpus_per_trial")
    @classmethod
    def _one_gpu_per_worker(cls, g: float | None, info: ValidationInfo) -> float | None:
        """A one-worker trial takes a share of one GPU (0 < g <= 1), a DDP trial a whole GPU per worker."""
        w = info.data.get("workers_per_trial")
        if not g or w is None:
            return g
        if w == 1 and g > 1 and g != int(g):
            raise ValueError("more than one GPU per trial must be a whole number (one GPU per worker)")
        if w == 1 and g > 1:
            raise ValueError(
                f"={g:g} with workers_per_trial=1: a worker uses one GPU; "
                f"set workers_per_trial: {g:g} (or leave it out)"
            )
        if w > 1 and g != w:
            raise ValueError(
                f"={g:g} with workers_per_trial={w}: each DDP worker needs a whole GPU of its own (nccl); "
                f"use gpus_per_trial: {w}, or 0 for CPUs"
            )
        return g

    @field_validator("metric")
    @classmethod
    def _metric_per_objective(cls, metric: str | list | None, info: ValidationInfo) -> str | list | None:
        if "objective" not in info.data:
            return metric  # the objective's own problem is reported
        multi = info.data["objective"] == "multi"
        if metric is None:
            return ["val_metric", "relative_cost"] if multi else "val_metric"
        if multi and (not isinstance(metric, list) or len(metric) < 2 or len(set(map(str, metric))) != len(metric)):
            raise ValueError(f"objective multi needs a list of at least two distinct metrics from {list(METRICS)}")
        if not multi and not isinstance(metric, str):
            raise ValueError("objective single needs one metric name (a list means objective: multi)")
        bad = [m for m in (metric if multi else [metric]) if m not in METRICS]
        if bad:
            raise ValueError(
                f": {', '.join(map(repr, bad))} {'is not a metric' if len(bad) == 1 else 'are not metrics'} every "
                f"trial report carries; expected one of {list(METRICS)}"
            )
        return metric

    @field_validator("mode")
    @classmethod
    def _mode_per_metric(cls, mode: str | list | None, info: ValidationInfo) -> str | list | None:
        metric = info.data.get("metric")
        if mode is None or metric is None:
            return mode
        multi = isinstance(metric, list)
        if multi != isinstance(mode, list) or (multi and len(mode) != len(metric)):
            raise ValueError(f"give one mode per metric {metric!r} ({'a list' if multi else 'a string'})")
        if any(m not in MODES for m in (mode if multi else [mode])):
            raise ValueError(f"each mode must be one of {list(MODES)}")
        return mode
