"""FlowConfig's fields as pydantic types: the model behind `fixed:`, and whether a value fits a key.

Strict, as FlowConfig itself tells True from 1 and "32" from 32, with one exception: YAML 1.1 reads `1e-5`
(no dot) as a string, so a float field reads such a string as a number. Paths are made absolute here,
since Ray trials run in their own working directories.
"""

from __future__ import annotations

import os
import typing
from dataclasses import fields
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError, create_model

from ..trainables.config import FlowConfig

FLOW_HINTS = typing.get_type_hints(FlowConfig)
FLOW_DEFAULTS = {f.name: f.default for f in fields(FlowConfig)}
TASK_PATH_KEYS = ("train_file", "validation_file", "text_files", "validation_files")  # own data's files
MODEL_ALIASES = ("minilm-l6",)  # `model` values that name a packaged model, never a local folder


def members(hint: Any) -> tuple:
    """The types of a union hint (`int | None` -> (int, NoneType)), or the hint alone."""
    if isinstance(hint, UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def type_name(hint: Any) -> str:
    return " | ".join("None" if t is NoneType else getattr(t, "__name__", str(t)) for t in members(hint))


def numeric_kind(hint: Any) -> str | None:
    """'float' / 'int' for a numeric field, None otherwise."""
    kinds = members(hint)
    return "float" if float in kinds else "int" if int in kinds else None


def yaml_float(value: Any) -> Any:
    """`1e-5` as YAML 1.1 reads it (a string) -> 1e-05; anything else unchanged."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def absolute(path: str) -> str:
    return str(Path(os.path.expandvars(path)).expanduser().absolute())


def _data_root(path: str | None) -> str | None:
    if path is None:
        return None
    folder = absolute(path)
    if not Path(folder).is_dir():
        raise ValueError(f"no such folder ({folder})")
    return folder


def _task(task: str | dict) -> str | dict:
    if isinstance(task, str):
        return task

    def fix(p: Any) -> Any:
        return absolute(p) if isinstance(p, str) else p

    paths = {k: [fix(p) for p in v] if isinstance(v, list) else fix(v) for k, v in task.items() if k in TASK_PATH_KEYS}
    return {**task, **paths}


def _model(model: str) -> str:
    local = Path(os.path.expandvars(model)).expanduser()
    return str(local.absolute()) if model not in MODEL_ALIASES and local.exists() else model


def _folder(path: str | None) -> str | None:
    return None if path is None else absolute(path)


def _teacher(model: str | None) -> str | None:
    return None if model is None else _model(model)


_NORMALISE = {"data_root": _data_root, "task": _task, "model": _model, "teacher": _teacher, "teacher_cache": _folder}


def _field_type(name: str, hint: Any) -> Any:
    extra = [BeforeValidator(yaml_float)] if float in members(hint) else []
    extra += [AfterValidator(_NORMALISE[name])] if name in _NORMALISE else []
    return Annotated[(hint, *extra)] if extra else hint


Fixed: type[BaseModel] = create_model(
    "Fixed",
    __config__=ConfigDict(strict=True, extra="forbid"),
    __doc__="The `fixed:` section: FlowConfig keys -> constants (every key optional, unknown keys rejected).",
    **{name: (_field_type(name, hint), FLOW_DEFAULTS[name]) for name, hint in FLOW_HINTS.items()},
)


def fit(key: str, value: Any) -> Any:
    """`value` as FlowConfig's `key` takes it (see Fixed); ValueError saying why it does not fit."""
    try:
        return getattr(Fixed.model_validate({key: value}), key)
    except ValidationError as e:
        error = e.errors(include_url=False)[0]
        if error["type"] == "value_error":
            raise ValueError(f"{value!r}: {error['ctx']['error']}") from None
        raise ValueError(f"{value!r} is a {type(value).__name__}, {key} takes {type_name(FLOW_HINTS[key])}") from None


def as_field(key: str, value: Any) -> Any:
    """`value` as FlowConfig's `key` takes it, or unchanged where it does not fit (the caller says why)."""
    try:
        return fit(key, value)
    except ValueError:
        return value
