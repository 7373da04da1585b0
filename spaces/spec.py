"""Search configs as data: the YAML format behind `tickettune search CONFIG.yaml`, and its validation.

A config has five top-level sections (all optional except that a search needs something to search)::

    name: sst2-minilm                 # experiment name (default: the file's stem)
    storage: runs                     # experiment folder; relative -> absolute (from the current dir)
    search: {num_samples: 8, objective: single, metric: val_metric, seed: 0, scheduler: asha, ...}
    fixed: {model: minilm-l6, task: sst2, max_train_samples: 2000}   # FlowConfig keys -> constants
    space:                            # FlowConfig keys -> domains
      head_ratio: {low: 0.2, high: 0.5}                      # float, uniform
      lambda_head: {low: 1.0e-5, high: 1.0e-3, log: true}    # float, log-uniform
      mask_interval: {low: 5, high: 20}                      # int (the FlowConfig field is an int)
      window: {choices: [3, 5]}                              # categorical
      theta_bar: {low: 0.5, high: 0.9, when: {pld: true}}    # sampled only when pld is true

`load_spec` checks everything before any trial starts and raises one `SpecError` (a ValueError) that
lists every problem found, each naming the offending key and value. See spaces/README.md.
"""
from __future__ import annotations

import copy
import math
import os
import re
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Iterable

import yaml

from ..trainables.flow import FlowConfig
from ..trainables.tasks import get_task
from ..trainables.masks import SCOPES, _n_prune

TOP_LEVEL = ("name", "storage", "search", "fixed", "space")
DOMAIN_KEYS = ("low", "high", "log", "step", "type", "choices", "when")
OBJECTIVES = ("single", "multi")
SCHEDULERS = ("asha", "none")
MODES = ("max", "min")
# Every report a trial sends carries these (flow.run_flow's `send`): Tune's strict metric check
# fails on any other key at some report, so only these can drive the searcher or the scheduler.
METRICS = ("val_metric", "relative_cost", "relative_time")
PLD_KEYS = ("theta_bar", "gamma", "pld_phase")  # no effect unless pld is true
PATH_KEYS = ("data_root",)                       # FlowConfig keys that are paths: made absolute
TASK_PATH_KEYS = ("train_file", "validation_file", "text_files", "validation_files")  # own data's, likewise
# A model whose layout is known without reading anything (checked against its config.json when present)
KNOWN_SHAPES = {"minilm-l6": (6, 12, 1536)}      # layers, heads per layer, FFN width per layer
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
        super().__init__(f"invalid search config{where} ({len(self.problems)} problem"
                         f"{'' if len(self.problems) == 1 else 's'}):\n  - " + "\n  - ".join(self.problems))


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
    storage: str                                  # absolute path (or a URI such as s3://...)
    search: SearchSettings
    fixed: dict[str, Any]                         # FlowConfig key -> constant
    space: dict[str, Domain]                      # in sampling order: a condition's keys come first
    source: str | None = None                     # the YAML file it came from

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
        return {"name": self.name, "storage": self.storage, "search": search,
                "fixed": copy.deepcopy(self.fixed), "space": {k: d.to_dict() for k, d in self.space.items()}}


# ----------------------------------------------------------------------------------------------------
# loading

class _Loader(yaml.SafeLoader):
    """SafeLoader that records duplicate mapping keys (PyYAML silently keeps the last one)."""

    def __init__(self, stream):
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    self.duplicates.append(f"line {key_node.start_mark.line + 1}: key {key!r} appears twice "
                                           f"in the same mapping")
                seen.add(key)
            except TypeError:  # unhashable key: SafeLoader reports it itself
                pass
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | os.PathLike) -> tuple[Any, list[str]]:
    """(data, problems): the parsed file, and its duplicate keys / syntax error as problems."""
    text = Path(path).read_text(encoding="utf-8")
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as e:
        return None, [f"{path}: not valid YAML: {e}"]
    finally:
        loader.dispose()
    return data, list(loader.duplicates)


def load_spec(source: str | os.PathLike | dict) -> SearchSpec:
    """A validated SearchSpec from a YAML file or an already parsed dict.

    Raises `SpecError` (a ValueError) listing every problem; nothing is started before that.
    Relative paths (`storage`, `fixed.data_root`, a `fixed.model` that is a local folder) are made
    absolute against the current directory, since Ray trials run in their own working directories.
    """
    problems: list[str] = []
    where = None
    if isinstance(source, dict):
        data = copy.deepcopy(source)
        default_name = "search"
    else:
        where = str(source)
        path = Path(source)
        if not path.is_file():
            raise SpecError([f"no such config file: {where}"], where)
        data, problems = read_yaml(path)
        default_name = path.stem
        if data is None and not problems:
            data = {}
    if problems and data is None:
        raise SpecError(problems, where)
    if not isinstance(data, dict):
        raise SpecError(problems + [f"the config must be a mapping with sections {list(TOP_LEVEL)}, "
                                    f"got {type(data).__name__}"], where)
    v = _Validator(problems)
    spec = v.spec(data, default_name, where)
    if v.problems:
        raise SpecError(v.problems, where)
    return spec


# ----------------------------------------------------------------------------------------------------
# validation

def same_value(a: Any, b: Any) -> bool:
    """Equality that does not confuse True with 1 or False with 0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def _members(hint: Any) -> tuple:
    if isinstance(hint, UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def _type_name(hint: Any) -> str:
    return " | ".join("None" if t is NoneType else getattr(t, "__name__", str(t)) for t in _members(hint))


def _fits(value: Any, hint: Any) -> bool:
    for t in _members(hint):
        if t is NoneType and value is None:
            return True
        if t is bool and isinstance(value, bool):
            return True
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if t in (str, dict) and isinstance(value, t):
            return True
    return False


def _numeric_kind(hint: Any) -> str | None:
    """'float' / 'int' for a numeric field, None otherwise."""
    members = _members(hint)
    if float in members:
        return "float"
    if int in members:
        return "int"
    return None


def _absolute_task_paths(task: dict) -> dict:
    """Own data's file paths made absolute (trials may run in another working directory)."""
    def absolute(p: Any) -> Any:
        return str(Path(os.path.expandvars(p)).expanduser().absolute()) if isinstance(p, str) else p

    out = dict(task)
    for key in TASK_PATH_KEYS:
        if key in out:
            out[key] = [absolute(p) for p in out[key]] if isinstance(out[key], list) else absolute(out[key])
    return out


def _coerce(value: Any, hint: Any) -> Any:
    """YAML 1.1 reads `1e-5` (no dot) as a string: read such strings as floats for float fields."""
    if isinstance(value, str) and float in _members(hint):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _bare(obj: type, values: dict[str, Any]) -> Any:
    """An instance with `values` set and no __post_init__ run: to call `problems()` without raising."""
    inst = object.__new__(obj)
    for f in fields(obj):
        setattr(inst, f.name, values.get(f.name, f.default))
    return inst


def _flow_problems(values: dict[str, Any]) -> list[str]:
    try:
        return _bare(FlowConfig, values).problems()
    except Exception as e:  # a value of a type problems() cannot compare: reported by the type checks
        return [f"FlowConfig.problems() failed on {values!r}: {type(e).__name__}: {e}"]


class _Validator:
    def __init__(self, problems: list[str]):
        self.problems = problems
        self.broken: set[str] = set()  # searched keys whose domain was invalid (already reported)

    def add(self, msg: str) -> None:
        if msg not in self.problems:
            self.problems.append(msg)

    # -- the whole config ---------------------------------------------------------------------------
    def spec(self, data: dict, default_name: str, where: str | None) -> SearchSpec:
        for key in data:
            if key not in TOP_LEVEL:
                self.add(f"unknown top-level key {key!r}{_hint(key, TOP_LEVEL)}")
        name = data.get("name", default_name)
        if not isinstance(name, str) or not NAME_RE.match(name):
            self.add(f"name={name!r}: must be a non-empty string of letters, digits, '.', '_', '-' "
                     f"(it names the experiment folder)")
        storage = self._storage(data.get("storage", "runs"))
        raw_fixed = self._section(data, "fixed")
        fixed = self._fixed(raw_fixed)
        space = self._space(self._section(data, "space"), raw_fixed)
        search = self._search(self._section(data, "search"), fixed, space)
        self._conditions(space, fixed)
        order = self._order(space)
        self._corners(fixed, space)
        self._layers(fixed, space)
        self._dead(fixed, space)
        return SearchSpec(name=name if isinstance(name, str) else str(name), storage=storage, search=search,
                          fixed=fixed, space={k: space[k] for k in order}, source=where)

    def _section(self, data: dict, key: str) -> dict:
        value = data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(f"{key}: must be a mapping, got {type(value).__name__} {value!r}")
            return {}
        return value

    def _storage(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            self.add(f"storage={value!r}: must be a non-empty path")
            return str(value)
        if "://" in value:
            return value
        return str(Path(os.path.expandvars(value)).expanduser().absolute())

    # -- fixed ----------------------------------------------------------------------------------------
    def _fixed(self, raw: dict) -> dict[str, Any]:
        fixed: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in _FLOW_FIELDS:
                self.add(f"fixed.{key}: unknown key{_hint(key, _FLOW_FIELDS)}")
                continue
            hint = _FLOW_HINTS[key]
            value = _coerce(value, hint)
            if not _fits(value, hint):
                self.add(f"fixed.{key}={value!r}: expected {_type_name(hint)}, got {type(value).__name__}")
                continue
            if key in PATH_KEYS and isinstance(value, str):
                value = str(Path(os.path.expandvars(value)).expanduser().absolute())
                if key == "data_root" and not Path(value).is_dir():
                    self.add(f"fixed.data_root={raw[key]!r}: no such folder ({value})")
                    continue
            if key == "task" and isinstance(value, dict):
                value = _absolute_task_paths(value)
            if key == "model" and isinstance(value, str) and value not in KNOWN_SHAPES:
                local = Path(os.path.expandvars(value)).expanduser()
                if local.exists():
                    value = str(local.absolute())
            fixed[key] = value
        return fixed

    # -- space ----------------------------------------------------------------------------------------
    def _space(self, raw: dict, fixed: dict) -> dict[str, Domain]:
        space: dict[str, Domain] = {}
        for key, value in raw.items():
            if key not in _FLOW_FIELDS:
                self.add(f"space.{key}: unknown key{_hint(key, _FLOW_FIELDS)}")
                continue
            if key in fixed:  # the raw fixed section: also keys whose fixed value was rejected
                self.add(f"{key}: both fixed ({fixed[key]!r}) and searched; keep it in one section")
                continue
            d = self._domain(key, value)
            if d is not None:
                space[key] = d
            else:
                self.broken.add(key)
        return space

    def _domain(self, key: str, raw: Any) -> Domain | None:
        where = f"space.{key}"
        if not isinstance(raw, dict):
            hint = "a constant belongs under fixed" if not isinstance(raw, list) else \
                "write {choices: [...]} for a categorical or {low: .., high: ..} for a range"
            self.add(f"{where}={raw!r}: a domain must be a mapping ({hint})")
            return None
        ok = True
        for k in raw:
            if k not in DOMAIN_KEYS:
                self.add(f"{where}: unknown domain key {k!r}{_hint(k, DOMAIN_KEYS)}")
                ok = False
        hint = _FLOW_HINTS[key]
        when = self._when_shape(where, raw.get("when"))
        if "choices" in raw:
            extra = [k for k in ("low", "high", "log", "step", "type") if k in raw]
            if extra:
                self.add(f"{where}: choices cannot be combined with {extra}")
                return None
            choices = raw["choices"]
            if not isinstance(choices, list):
                self.add(f"{where}.choices={choices!r}: must be a list")
                return None
            if not choices:
                self.add(f"{where}.choices: empty list, nothing to choose from")
                return None
            values = []
            for c in choices:
                c = _coerce(c, hint)
                if not isinstance(c, _SCALAR):
                    self.add(f"{where}.choices: {c!r} is a {type(c).__name__}; Optuna choices must be "
                             f"None, bool, int, float or str")
                    ok = False
                elif not _fits(c, hint):
                    self.add(f"{where}.choices: {c!r} is a {type(c).__name__}, {key} takes {_type_name(hint)}")
                    ok = False
                elif any(same_value(c, v) for v in values):
                    self.add(f"{where}.choices: {c!r} appears twice")
                    ok = False
                values.append(c)
            if len(values) == 1 and ok:
                self.add(f"{where}.choices={values!r}: a single choice is a constant; put it under fixed")
                ok = False
            return Domain(key, "categorical", choices=tuple(values), when=when or {}) if ok and when is not None \
                else None
        if "low" not in raw or "high" not in raw:
            missing = [k for k in ("low", "high") if k not in raw]
            self.add(f"{where}: a range needs both low and high (missing {missing}), or give choices")
            return None
        field_kind = _numeric_kind(hint)
        if field_kind is None:
            self.add(f"{where}: {key} is a {_type_name(hint)}, not a number: use choices, not a range")
            return None
        kind = raw.get("type", field_kind)
        if kind not in ("int", "float"):
            self.add(f"{where}.type={kind!r}: expected 'int' or 'float'")
            return None
        if kind == "float" and field_kind == "int":
            self.add(f"{where}.type='float': {key} takes an int")
            return None
        low, high = raw["low"], raw["high"]
        if kind == "float":
            low, high = _coerce(low, float), _coerce(high, float)
        log, step = raw.get("log", False), raw.get("step")
        for name, b in (("low", low), ("high", high)):
            if isinstance(b, bool) or not isinstance(b, (int, float)):
                self.add(f"{where}.{name}={b!r}: must be a number")
                ok = False
            elif not math.isfinite(b):
                self.add(f"{where}.{name}={b!r}: must be finite")
                ok = False
            elif kind == "int" and not isinstance(b, int):
                self.add(f"{where}.{name}={b!r}: must be an int ({key} is sampled as int)")
                ok = False
        if not isinstance(log, bool):
            self.add(f"{where}.log={log!r}: must be true or false")
            ok = False
        if step is not None:
            if isinstance(step, bool) or not isinstance(step, (int, float)) or not step > 0:
                self.add(f"{where}.step={step!r}: must be a number > 0")
                ok = False
            elif kind == "int" and not isinstance(step, int):
                self.add(f"{where}.step={step!r}: must be an int for an int range")
                ok = False
        if not ok:
            return None
        if low >= high:
            self.add(f"{where}: empty range low={low!r} >= high={high!r}")
            ok = False
        if log and low <= 0:
            self.add(f"{where}: log range needs low > 0, got low={low!r}")
            ok = False
        if log and step is not None and (kind == "float" or step != 1):
            self.add(f"{where}: log=true cannot be combined with step={step!r}")
            ok = False
        if kind == "float":
            low, high = float(low), float(high)
            step = float(step) if step is not None else None
        if not ok or when is None:
            return None
        return Domain(key, kind, low=low, high=high, log=log, step=step, when=when)

    def _when_shape(self, where: str, raw: Any) -> dict[str, tuple] | None:
        if raw is None:
            return {}
        if not isinstance(raw, dict) or not raw:
            self.add(f"{where}.when={raw!r}: must be a non-empty mapping key -> value (or list of values)")
            return None
        out = {}
        for k, v in raw.items():
            values = tuple(v) if isinstance(v, list) else (v,)
            if not values:
                self.add(f"{where}.when.{k}: empty list of values, the condition can never hold")
                return None
            out[k] = values
        return out

    # -- conditions -----------------------------------------------------------------------------------
    def _conditions(self, space: dict[str, Domain], fixed: dict) -> None:
        for key, d in list(space.items()):
            for ck, values in list(d.when.items()):
                where = f"space.{key}.when.{ck}"
                if ck in _FLOW_HINTS:
                    values = d.when[ck] = tuple(_coerce(v, _FLOW_HINTS[ck]) for v in values)
                if ck == key:
                    self.add(f"{where}: a key cannot be conditioned on itself")
                elif ck in self.broken:
                    continue
                elif ck in space:
                    other = space[ck]
                    if other.kind != "categorical":
                        self.add(f"{where}: {ck} is a {other.kind} range; conditions can only name keys "
                                 f"searched with choices (or fixed keys)")
                        continue
                    for v in values:
                        if not other.contains(v):
                            self.add(f"{where}={v!r}: not one of {ck}'s choices {list(other.choices)}")
                elif ck in _FLOW_FIELDS:
                    actual = fixed.get(ck, _FLOW_FIELDS[ck].default)
                    origin = "fixed to" if ck in fixed else "not searched, default"
                    if not any(same_value(actual, v) for v in values):
                        self.add(f"{where}={list(values)!r}: never holds ({ck} is {origin} {actual!r}), "
                                 f"so {key} would never be sampled")
                else:
                    self.add(f"{where}: unknown key {ck!r}: conditions must name trial keys")

    def _order(self, space: dict[str, Domain]) -> list[str]:
        """Keys in sampling order: file order, except that a condition's keys come before it."""
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(k: str, path: list[str]) -> None:
            if state.get(k) == 2:
                return
            if state.get(k) == 1:
                self.add(f"space: conditions form a cycle: {' -> '.join(path + [k])}")
                return
            state[k] = 1
            for ck in space[k].when:
                if ck in space and ck != k:
                    visit(ck, path + [k])
            state[k] = 2
            order.append(k)

        for k in space:
            visit(k, [])
        return order

    # -- search ---------------------------------------------------------------------------------------
    def _search(self, raw: dict, fixed: dict, space: dict[str, Domain]) -> SearchSettings:
        for key in raw:
            if key not in _SEARCH_DEFAULTS:
                self.add(f"search.{key}: unknown key{_hint(key, _SEARCH_DEFAULTS)}")
        get = lambda k: raw.get(k, _SEARCH_DEFAULTS[k])  # noqa: E731
        s = SearchSettings()

        def integer(k: str, lo: int, allow_none: bool = False) -> Any:
            v = get(k)
            if v is None and allow_none:
                return None
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                self.add(f"search.{k}={v!r}: must be an int >= {lo}" + (" or null" if allow_none else ""))
                return _SEARCH_DEFAULTS[k]
            return v

        s.num_samples = integer("num_samples", 1)
        s.max_concurrent = integer("max_concurrent", 1, allow_none=True)
        s.workers_per_trial = integer("workers_per_trial", 1)
        s.max_failures = integer("max_failures", -1)
        seed = get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            self.add(f"search.seed={seed!r}: must be an int or null")
        else:
            s.seed = seed
        cpus = get("cpus_per_worker")
        if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not cpus > 0):
            self.add(f"search.cpus_per_worker={cpus!r}: must be a number > 0 or null")
        else:
            s.cpus_per_worker = cpus
        self._gpus(s, raw, get("gpus_per_trial"))
        executor = get("executor")
        if executor not in ("auto", "train", "inline"):
            self.add(f"search.executor={executor!r}: expected one of ['auto', 'train', 'inline']")
        else:
            s.executor = executor
        scheduler = get("scheduler")
        scheduler = "none" if scheduler is None else scheduler
        if scheduler not in SCHEDULERS:
            self.add(f"search.scheduler={scheduler!r}: expected one of {list(SCHEDULERS)}")
        else:
            s.scheduler = scheduler
        project = get("wandb_project")
        if project is not None and (not isinstance(project, str) or not project.strip()):
            self.add(f"search.wandb_project={project!r}: must be a non-empty string or null")
        else:
            s.wandb_project = project
        baseline = get("baseline")
        if not isinstance(baseline, bool):
            self.add(f"search.baseline={baseline!r}: must be true or false")
        elif baseline:
            s.baseline = True
            if not any(k in fixed for k in ("budget_steps", "budget_epochs")):
                self.add("search.baseline=true: the dense reference needs a fixed budget_steps or budget_epochs "
                         "(the same budget every trial replaces)")
        objective = get("objective")
        if objective not in OBJECTIVES:
            self.add(f"search.objective={objective!r}: expected one of {list(OBJECTIVES)}")
            return s
        s.objective = objective
        self._metrics(s, raw, fixed, space)
        return s

    def _gpus(self, s: SearchSettings, raw: dict, gpus: Any) -> None:
        """A one-worker trial takes a share of one GPU (0 < g <= 1) or whole GPUs, one per DDP worker; when
        workers_per_trial is not given, g > 1 GPUs means g workers."""
        if gpus is None:
            return
        if isinstance(gpus, bool) or not isinstance(gpus, (int, float)) or not gpus >= 0:
            self.add(f"search.gpus_per_trial={gpus!r}: must be a number >= 0 or null (null: one GPU per worker "
                     f"where the cluster has GPUs)")
            return
        if gpus > 1 and "workers_per_trial" not in raw:
            if gpus != int(gpus):
                self.add(f"search.gpus_per_trial={gpus!r}: more than one GPU per trial must be a whole number "
                         f"(one GPU per worker)")
                return
            s.workers_per_trial = int(gpus)
        w = s.workers_per_trial
        if gpus and w == 1 and gpus > 1:
            self.add(f"search.gpus_per_trial={gpus!r} with workers_per_trial=1: a worker uses one GPU; "
                     f"set workers_per_trial: {gpus:g} (or leave it out)")
        elif gpus and w > 1 and gpus != w:
            self.add(f"search.gpus_per_trial={gpus!r} with workers_per_trial={w}: each DDP worker needs a whole "
                     f"GPU of its own (nccl); use gpus_per_trial: {w}, or 0 for CPUs")
        s.gpus_per_trial = gpus

    def _metrics(self, s: SearchSettings, raw: dict, fixed: dict, space: dict[str, Domain]) -> None:
        multi = s.objective == "multi"
        metric = raw.get("metric", ["val_metric", "relative_cost"] if multi else "val_metric")
        mode = raw.get("mode")
        if multi:
            if not isinstance(metric, list) or len(metric) < 2 or len(set(map(str, metric))) != len(metric):
                self.add(f"search.metric={metric!r}: objective multi needs a list of at least two distinct "
                         f"metrics from {list(METRICS)}")
                return
        elif not isinstance(metric, str):
            self.add(f"search.metric={metric!r}: objective single needs one metric name "
                     f"(a list means objective: multi)")
            return
        metrics = metric if multi else [metric]
        bad = [m for m in metrics if m not in METRICS]
        for m in bad:
            self.add(f"search.metric: {m!r} is not a metric every trial report carries; expected one of "
                     f"{list(METRICS)}")
        if bad:
            return
        if mode is None:
            modes = []
            for m in metrics:
                if m in ("relative_cost", "relative_time"):
                    modes.append("min")
                    continue
                tasks = space["task"].choices if "task" in space else (fixed.get("task", "sst2"),)
                try:
                    found = {get_task(t).mode for t in tasks}
                except ValueError:
                    return  # an unknown task: reported where the task's value is checked
                if len(found) > 1:
                    self.add(f"search.mode: val_metric is maximised on some task choices {list(tasks)} "
                             f"and minimised (perplexity) on others; give search.mode explicitly")
                    return
                modes.append(found.pop())
        else:
            modes = mode if isinstance(mode, list) else [mode]
            if multi != isinstance(mode, list) or len(modes) != len(metrics):
                self.add(f"search.mode={mode!r}: give one mode per metric {metric!r} "
                         f"({'a list' if multi else 'a string'})")
                return
            wrong = [m for m in modes if m not in MODES]
            if wrong:
                self.add(f"search.mode={mode!r}: each mode must be one of {list(MODES)}")
                return
        s.metric = list(metrics) if multi else metrics[0]
        s.mode = list(modes) if multi else modes[0]

    # -- FlowConfig's own checks at the corners -------------------------------------------------------
    def _corners(self, fixed: dict, space: dict[str, Domain]) -> None:
        base = {**{f.name: f.default for f in fields(FlowConfig)}, **fixed}
        base_problems = _flow_problems(base)
        for p in base_problems:
            self.add(f"fixed: {p}")
        seen = set(base_problems)
        for key, d in space.items():
            for v in d.corners():
                for p in _flow_problems({**base, key: v}):
                    if p not in seen:
                        label = "choice" if d.kind == "categorical" else ("low" if v == d.low else "high")
                        self.add(f"space.{key} ({label} {v!r}): {p}")
                        seen.add(p)
        for label, pick in (("all lows / first choices", 0), ("all highs / last choices", -1)):
            values = {k: d.corners()[pick] for k, d in space.items()}
            for p in _flow_problems({**base, **values}):
                if p not in seen:
                    self.add(f"space ({label}): {p}")
                    seen.add(p)

    # -- masks: nothing may empty a layer, the ratio must be reachable --------------------------------
    def _values(self, key: str, fixed: dict, space: dict[str, Domain]) -> list:
        if key in space:
            return space[key].corners()
        return [fixed.get(key, _FLOW_FIELDS[key].default)]

    def _layers(self, fixed: dict, space: dict[str, Domain]) -> None:
        for kind, ratio_key, min_key, scope_key, what in (
                ("heads", "head_ratio", "min_heads", "head_scope", "heads"),
                ("ffn", "ffn_ratio", "min_ffn", "ffn_scope", "FFN neurons")):
            mins = self._values(min_key, fixed, space)
            scopes = self._values(scope_key, fixed, space)
            for m in mins:
                if isinstance(m, bool) or not isinstance(m, int) or m < 1:
                    self.add(f"{_where(min_key, fixed, space)}: {min_key}={m!r} must be an int >= 1: "
                             f"a layer could lose all its {what}")
            for s in scopes:
                if s not in SCOPES:
                    self.add(f"{_where(scope_key, fixed, space)}: {scope_key}={s!r}: expected one of "
                             f"{list(SCOPES)}")
            ratios = [r for r in self._values(ratio_key, fixed, space)
                      if isinstance(r, (int, float)) and not isinstance(r, bool) and 0 <= r < 1]
            mins = [m for m in mins if isinstance(m, int) and not isinstance(m, bool) and m >= 1]
            scopes = [s for s in scopes if s in SCOPES]
            for label, widths in self._shapes(fixed, space, kind):
                for r in ratios:
                    for m in mins:
                        for s in scopes:
                            msg = _prune_problem(widths, r, m, s, ratio_key, min_key, what)
                            if msg:
                                self.add(f"{msg} in {label}")

    def _shapes(self, fixed: dict, space: dict[str, Domain], kind: str) -> Iterable[tuple[str, list[int]]]:
        """(label, per-layer widths of `kind`) for every model the search can train."""
        out = []
        scratch = self._values("scratch", fixed, space)
        for sc in scratch:
            if sc is not None:
                shape = self._scratch_shape(sc)
                if shape is not None:
                    out.append(("the scratch model", shape["heads" if kind == "heads" else "ffn"]))
        if any(sc is None for sc in scratch):
            for model in self._values("model", fixed, space):
                shape = self._model_shape(model)
                if shape is not None:
                    out.append((f"model {model!r}", shape["heads" if kind == "heads" else "ffn"]))
        return out

    def _scratch_shape(self, d: Any) -> dict | None:
        from ..trainables.model import scratch_from_dict
        if not isinstance(d, dict):
            return None
        try:
            sc = scratch_from_dict(d)
        except (ValueError, TypeError) as e:
            self.add(f"fixed.scratch={d!r}: {e}")
            return None
        return {"heads": [sc.heads] * sc.layers, "ffn": [sc.ffn] * sc.layers}

    def _model_shape(self, model: Any) -> dict | None:
        import json
        from ..trainables.families import UnsupportedModel, family_of
        from ..trainables.model import resolve
        if not isinstance(model, str):
            return None
        try:
            folder = resolve(model)
        except FileNotFoundError as e:
            self.add(f"model={model!r}: {e}")
            return None
        cfg_file = Path(folder) / "config.json"
        if not cfg_file.is_file():  # a hub id: layout unknown offline
            if model in KNOWN_SHAPES:
                n, h, f = KNOWN_SHAPES[model]
                return {"heads": [h] * n, "ffn": [f] * n}
            return None
        try:
            cfg = json.loads(cfg_file.read_text())
            layout = cfg.get("tickettune") or {}
            if layout.get("heads_per_layer"):
                return {"heads": list(layout["heads_per_layer"]), "ffn": list(layout["ffn_per_layer"])}
            return family_of(cfg.get("model_type"), where=f"model={model!r}").widths(cfg)
        except UnsupportedModel as e:
            self.add(str(e))
            return None
        except (ValueError, KeyError, TypeError) as e:
            self.add(f"model={model!r}: cannot read its layout from {cfg_file}: {type(e).__name__}: {e}")
            return None

    # -- keys that cannot matter ----------------------------------------------------------------------
    def _dead(self, fixed: dict, space: dict[str, Domain]) -> None:
        pld_can_be_on = any(same_value(v, True) for v in self._values("pld", fixed, space))
        if pld_can_be_on:
            return
        for key in PLD_KEYS:
            if key in space and not any(ck == "pld" for ck in space[key].when):  # `when` already reported
                self.add(f"space.{key}: has no effect, pld is {fixed.get('pld', False)!r} "
                         f"({'fixed' if 'pld' in fixed else 'default'}); set fixed.pld: true or search pld")


def _hint(key: Any, known: Iterable[str]) -> str:
    """'; did you mean 'x'?' for a near miss, else the list of known keys."""
    import difflib
    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else f"; expected one of {sorted(known)}"


def _where(key: str, fixed: dict, space: dict) -> str:
    return f"space.{key}" if key in space else f"fixed.{key}" if key in fixed else f"{key} (default)"


def _prune_problem(widths: list[int], ratio: float, minimum: int, scope: str, ratio_key: str, min_key: str,
                   what: str) -> str | None:
    """Why masks.select with these settings would empty a layer or not honour the ratio (None: fine)."""
    mins = [min(minimum, n) for n in widths]
    if ratio > 0 and _n_prune(ratio, max(widths)) > 0 and minimum >= max(widths):
        return (f"{min_key}={minimum} is at least the layer width ({max(widths)} {what}): nothing can be "
                f"pruned, {ratio_key}={ratio!r} has no effect")
    if scope == "layer":
        for n, m in zip(widths, mins):
            kept = n - _n_prune(ratio, n)
            if kept < 1:
                return f"{ratio_key}={ratio!r} prunes all {n} {what} of a layer"
            if kept < m:
                return (f"{ratio_key}={ratio!r} keeps {kept} of {n} {what} per layer, below {min_key}={minimum}: "
                        f"the minimum would override the ratio")
        return None
    total = sum(widths)
    asked = _n_prune(ratio, total)
    allowed = sum(n - m for n, m in zip(widths, mins))
    if asked >= total:
        return f"{ratio_key}={ratio!r} prunes all {total} {what}"
    if asked > allowed:
        return (f"{ratio_key}={ratio!r} asks to prune {asked} of {total} {what}, but {min_key}={minimum} per layer "
                f"allows only {allowed}: the minimum would override the ratio")
    return None
