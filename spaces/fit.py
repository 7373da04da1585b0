"""How a YAML value is matched against a FlowConfig field's type hint, and made what the field expects."""

from __future__ import annotations

import os
import typing
from dataclasses import fields
from pathlib import Path
from types import NoneType, UnionType
from typing import Any

from ..trainables.config import FlowConfig
from .schema import TASK_PATH_KEYS


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
