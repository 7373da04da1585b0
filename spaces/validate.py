"""The validator behind `load_spec`: each section's keys and values, each domain, and the `when`
conditions between them; the cross-section checks come from checks.py."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from .checks import CrossChecks, _hint
from .fit import _absolute_task_paths, _coerce, _fits, _numeric_kind, _type_name
from .schema import (
    _FLOW_FIELDS,
    _FLOW_HINTS,
    _SCALAR,
    DOMAIN_KEYS,
    KNOWN_SHAPES,
    NAME_RE,
    PATH_KEYS,
    TOP_LEVEL,
    Domain,
    SearchSpec,
    same_value,
)


class Validator(CrossChecks):
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
            self.add(
                f"name={name!r}: must be a non-empty string of letters, digits, '.', '_', '-' "
                f"(it names the experiment folder)"
            )
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
        return SearchSpec(
            name=name if isinstance(name, str) else str(name),
            storage=storage,
            search=search,
            fixed=fixed,
            space={k: space[k] for k in order},
            source=where,
        )

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
            hint = (
                "a constant belongs under fixed"
                if not isinstance(raw, list)
                else "write {choices: [...]} for a categorical or {low: .., high: ..} for a range"
            )
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
                    self.add(
                        f"{where}.choices: {c!r} is a {type(c).__name__}; Optuna choices must be "
                        f"None, bool, int, float or str"
                    )
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
            return (
                Domain(key, "categorical", choices=tuple(values), when=when or {}) if ok and when is not None else None
            )
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
                        self.add(
                            f"{where}: {ck} is a {other.kind} range; conditions can only name keys "
                            f"searched with choices (or fixed keys)"
                        )
                        continue
                    for v in values:
                        if not other.contains(v):
                            self.add(f"{where}={v!r}: not one of {ck}'s choices {list(other.choices)}")
                elif ck in _FLOW_FIELDS:
                    actual = fixed.get(ck, _FLOW_FIELDS[ck].default)
                    origin = "fixed to" if ck in fixed else "not searched, default"
                    if not any(same_value(actual, v) for v in values):
                        self.add(
                            f"{where}={list(values)!r}: never holds ({ck} is {origin} {actual!r}), "
                            f"so {key} would never be sampled"
                        )
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
