"""The checks that look across a config's sections: the search settings against the space, the metrics a
trial reports, the corners of the space (every combination must build a valid FlowConfig), the model's
shape against the pruning settings, and keys that have no effect."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, Iterable

from ..trainables.config import FlowConfig
from ..trainables.earlybert.masks import SCOPES, n_prune
from ..trainables.tasks import get_task
from .enqueue import check_enqueue
from .fit import _flow_problems
from .schema import (
    _FLOW_FIELDS,
    _SEARCH_DEFAULTS,
    KNOWN_SHAPES,
    METRICS,
    MODES,
    OBJECTIVES,
    PLD_KEYS,
    SCHEDULERS,
    Domain,
    SearchSettings,
    same_value,
)


class CrossChecks:
    """Mixed into the validator: `self.add(problem)` and `self.broken` come from it."""

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
                self.add(
                    "search.baseline=true: the dense reference needs a fixed budget_steps or budget_epochs "
                    "(the same budget every trial replaces)"
                )
        s.enqueue, problems = check_enqueue(get("enqueue"), fixed, space, self.broken, s.num_samples)
        for p in problems:
            self.add(p)
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
            self.add(
                f"search.gpus_per_trial={gpus!r}: must be a number >= 0 or null (null: one GPU per worker "
                f"where the cluster has GPUs)"
            )
            return
        if gpus > 1 and "workers_per_trial" not in raw:
            if gpus != int(gpus):
                self.add(
                    f"search.gpus_per_trial={gpus!r}: more than one GPU per trial must be a whole number "
                    f"(one GPU per worker)"
                )
                return
            s.workers_per_trial = int(gpus)
        w = s.workers_per_trial
        if gpus and w == 1 and gpus > 1:
            self.add(
                f"search.gpus_per_trial={gpus!r} with workers_per_trial=1: a worker uses one GPU; "
                f"set workers_per_trial: {gpus:g} (or leave it out)"
            )
        elif gpus and w > 1 and gpus != w:
            self.add(
                f"search.gpus_per_trial={gpus!r} with workers_per_trial={w}: each DDP worker needs a whole "
                f"GPU of its own (nccl); use gpus_per_trial: {w}, or 0 for CPUs"
            )
        s.gpus_per_trial = gpus

    def _metrics(self, s: SearchSettings, raw: dict, fixed: dict, space: dict[str, Domain]) -> None:
        multi = s.objective == "multi"
        metric = raw.get("metric", ["val_metric", "relative_cost"] if multi else "val_metric")
        mode = raw.get("mode")
        if multi:
            if not isinstance(metric, list) or len(metric) < 2 or len(set(map(str, metric))) != len(metric):
                self.add(
                    f"search.metric={metric!r}: objective multi needs a list of at least two distinct "
                    f"metrics from {list(METRICS)}"
                )
                return
        elif not isinstance(metric, str):
            self.add(
                f"search.metric={metric!r}: objective single needs one metric name (a list means objective: multi)"
            )
            return
        metrics = metric if multi else [metric]
        bad = [m for m in metrics if m not in METRICS]
        for m in bad:
            self.add(
                f"search.metric: {m!r} is not a metric every trial report carries; expected one of {list(METRICS)}"
            )
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
                    self.add(
                        f"search.mode: val_metric is maximised on some task choices {list(tasks)} "
                        f"and minimised (perplexity) on others; give search.mode explicitly"
                    )
                    return
                modes.append(found.pop())
        else:
            modes = mode if isinstance(mode, list) else [mode]
            if multi != isinstance(mode, list) or len(modes) != len(metrics):
                self.add(
                    f"search.mode={mode!r}: give one mode per metric {metric!r} ({'a list' if multi else 'a string'})"
                )
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
            ("ffn", "ffn_ratio", "min_ffn", "ffn_scope", "FFN neurons"),
        ):
            mins = self._values(min_key, fixed, space)
            scopes = self._values(scope_key, fixed, space)
            for m in mins:
                if isinstance(m, bool) or not isinstance(m, int) or m < 1:
                    self.add(
                        f"{_where(min_key, fixed, space)}: {min_key}={m!r} must be an int >= 1: "
                        f"a layer could lose all its {what}"
                    )
            for s in scopes:
                if s not in SCOPES:
                    self.add(f"{_where(scope_key, fixed, space)}: {scope_key}={s!r}: expected one of {list(SCOPES)}")
            ratios = [
                r
                for r in self._values(ratio_key, fixed, space)
                if isinstance(r, (int, float)) and not isinstance(r, bool) and 0 <= r < 1
            ]
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
        from ..trainables.model.build import scratch_from_dict

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

        from ..trainables.model.build import model_path
        from ..trainables.model.families import UnsupportedModel, family_of

        if not isinstance(model, str):
            return None
        try:
            folder = model_path(model)
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
                self.add(
                    f"space.{key}: has no effect, pld is {fixed.get('pld', False)!r} "
                    f"({'fixed' if 'pld' in fixed else 'default'}); set fixed.pld: true or search pld"
                )


def _hint(key: Any, known: Iterable[str]) -> str:
    """'; did you mean 'x'?' for a near miss, else the list of known keys."""
    import difflib

    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else f"; expected one of {sorted(known)}"


def _where(key: str, fixed: dict, space: dict) -> str:
    return f"space.{key}" if key in space else f"fixed.{key}" if key in fixed else f"{key} (default)"


def _prune_problem(
    widths: list[int], ratio: float, minimum: int, scope: str, ratio_key: str, min_key: str, what: str
) -> str | None:
    """Why masks.select with these settings would empty a layer or not honour the ratio (None: fine)."""
    mins = [min(minimum, n) for n in widths]
    if ratio > 0 and n_prune(ratio, max(widths)) > 0 and minimum >= max(widths):
        return (
            f"{min_key}={minimum} is at least the layer width ({max(widths)} {what}): nothing can be "
            f"pruned, {ratio_key}={ratio!r} has no effect"
        )
    if scope == "layer":
        for n, m in zip(widths, mins):
            kept = n - n_prune(ratio, n)
            if kept < 1:
                return f"{ratio_key}={ratio!r} prunes all {n} {what} of a layer"
            if kept < m:
                return (
                    f"{ratio_key}={ratio!r} keeps {kept} of {n} {what} per layer, below {min_key}={minimum}: "
                    f"the minimum would override the ratio"
                )
        return None
    total = sum(widths)
    asked = n_prune(ratio, total)
    allowed = sum(n - m for n, m in zip(widths, mins))
    if asked >= total:
        return f"{ratio_key}={ratio!r} prunes all {total} {what}"
    if asked > allowed:
        return (
            f"{ratio_key}={ratio!r} asks to prune {asked} of {total} {what}, but {min_key}={minimum} per layer "
            f"allows only {allowed}: the minimum would override the ratio"
        )
    return None
