"""What a search config is once read: its sections' types (Domain, SearchSettings, SearchSpec), the
names and limits they draw on, and SpecError, the one error that lists every problem."""

from __future__ import annotations

import copy
import re
import typing
from dataclasses import dataclass, field, fields
from types import NoneType
from typing import Any

from ..trainables.config import FlowConfig

TOP_LEVEL = ("name", "storage", "search", "fixed", "space")
DOMAIN_KEYS = ("low", "high", "log", "step", "type", "choices", "when")
OBJECTIVES = ("single", "multi")
SCHEDULERS = ("asha", "none")
MODES = ("max", "min")
# Every report a trial sends carries these (flow.run_flow's `send`): Tune's strict metric check
# fails on any other key at some report, so only these can drive the searcher or the scheduler.
METRICS = ("val_metric", "relative_cost", "relative_time")
PLD_KEYS = ("theta_bar", "gamma", "pld_phase")  # no effect unless pld is true
PATH_KEYS = ("data_root",)  # FlowConfig keys that are paths: made absolute
TASK_PATH_KEYS = ("train_file", "validation_file", "text_files", "validation_files")  # own data's, likewise
# A model whose layout is known without reading anything (checked against its config.json when present)
KNOWN_SHAPES = {"minilm-l6": (6, 12, 1536)}  # layers, heads per layer, FFN width per layer
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

_FLOW_FIELDS = {f.name: f for f in fields(FlowConfig)}
_FLOW_HINTS = typing.get_type_hints(FlowConfig)
_SCALAR = (NoneType, bool, int, float, str)


class SpecError(ValueError):
    """Every problem of a search config at once; `problems` holds them one per string."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        where = f" {source}" if source else ""
        super().__init__(
            f"invalid search config{where} ({len(self.problems)} problem"
            f"{'' if len(self.problems) == 1 else 's'}):\n  - " + "\n  - ".join(self.problems)
        )


@dataclass
class Domain:
    """Where one FlowConfig key is sampled from.

    kind "float" / "int": `low`..`high` (both included), optionally `log` (log-uniform) or `step`;
    kind "categorical": one of `choices`. `when` maps other keys to the values they must take for this
    one to be sampled at all (all of them must hold); otherwise the trial uses the FlowConfig default.
    """

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()
    when: dict[str, tuple] = field(default_factory=dict)

    def corners(self) -> list:
        """The extreme values: both bounds of a range, every choice."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]

    def contains(self, value: Any) -> bool:
        if self.kind == "categorical":
            return any(same_value(value, c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and not float(value).is_integer():
            return False
        return self.low <= value <= self.high

    def to_dict(self) -> dict:
        d: dict[str, Any]
        if self.kind == "categorical":
            d = {"choices": list(self.choices)}
        else:
            d = {"low": self.low, "high": self.high}
            if self.log:
                d["log"] = True
            if self.step is not None:
                d["step"] = self.step
            d["type"] = self.kind
        if self.when:
            d["when"] = {k: list(v) for k, v in self.when.items()}
        return d


@dataclass
class SearchSettings:
    """How the search runs. `metric`/`mode` are a str for objective "single", lists for "multi" (the
    shapes `ray.tune.search.optuna.OptunaSearch` takes); `mode` is resolved at load time."""

    num_samples: int = 8
    objective: str = "single"
    metric: str | list[str] = "val_metric"
    mode: str | list[str] = "max"
    seed: int | None = 0
    scheduler: str = "asha"
    max_concurrent: int | None = None
    workers_per_trial: int = 1
    cpus_per_worker: float | None = None
    gpus_per_trial: float | None = None  # None: a GPU per worker where the cluster has them; 0.5: two trials per GPU
    max_failures: int = 1
    wandb_project: str | None = None
    executor: str = "auto"  # "train": a Ray Train TorchTrainer per trial; "inline": in the Tune trial; auto: by workers
    baseline: bool = False  # one extra trial: the dense run of the same budget, no search (the reference point)
    enqueue: list | None = None  # points the sampler tries first ({searched key: value}, see enqueue.py)

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


_SEARCH_DEFAULTS = {f.name: f.default for f in fields(SearchSettings)}


@dataclass
class SearchSpec:
    name: str
    storage: str  # absolute path (or a URI such as s3://...)
    search: SearchSettings
    fixed: dict[str, Any]  # FlowConfig key -> constant
    space: dict[str, Domain]  # in sampling order: a condition's keys come first
    source: str | None = None  # the YAML file it came from

    @property
    def conditional(self) -> bool:
        return any(d.when for d in self.space.values())

    def flow_config(self, params: dict[str, Any]) -> FlowConfig:
        """The trial's FlowConfig: fixed values, then `params` (a sampled config) on top."""
        return FlowConfig.from_dict({**self.fixed, **params})

    def to_dict(self) -> dict:
        """Plain data (YAML-safe) that `load_spec` reads back into an equal spec."""
        s = self.search
        search = {f.name: copy.deepcopy(getattr(s, f.name)) for f in fields(SearchSettings)}
        return {
            "name": self.name,
            "storage": self.storage,
            "search": search,
            "fixed": copy.deepcopy(self.fixed),
            "space": {k: d.to_dict() for k, d in self.space.items()},
        }


def same_value(a: Any, b: Any) -> bool:
    """Equality that does not confuse True with 1 or False with 0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b
