"""The task registry: the one place a task enters.

`get_task(spec)` turns what a user wrote (a name such as "sst2", "MNLI", "wikitext", or a dict describing
their own data) into a `Task`; flow.py, cli.py, the search spec and the ticket ask it for everything task-
specific. A new task registers a factory under its name here (see `register`); nothing else changes.

Own data is a dict: ``{train_file, validation_file, text_columns, label_column[, regression, name]}`` for a
labelled table (own_data.TableConfig), ``{text_files | hub, ...}`` for MLM on the user's text
(mlm.TextConfig).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..model.heads import HEADS  # the heads a task may name (model.load_model's)
from .base import MODES, DataArgs, Task

_FACTORIES: dict[str, Callable[[], Task]] = {}
_NAMES: dict[str, str] = {}  # lookup key -> the name as registered ("squadv2" -> "squad_v2")
_DICT_CACHE: dict[str, Task] = {}


def register(name: str, factory: Callable[[], Task]) -> None:
    """Make `name` (case, "-" and "_" ignored) build the task `factory()` returns."""
    _FACTORIES[_key(name)] = factory
    _NAMES[_key(name)] = name


def _key(name: str) -> str:
    return str(name).lower().replace("-", "").replace("_", "")


def names() -> list[str]:
    """Every registered task name (own data is given as a dict, not a name)."""
    return sorted(_NAMES.values())


def get_task(spec: str | dict | Task) -> Task:
    """The task `spec` names or describes; raises ValueError naming what is wrong with it."""
    if isinstance(spec, Task):
        return spec
    if isinstance(spec, dict):
        key = json.dumps(spec, sort_keys=True, default=str)
        if key not in _DICT_CACHE:  # one object per description: own data is read once per process
            _DICT_CACHE[key] = _own(spec)
        return _DICT_CACHE[key]
    if not isinstance(spec, str):
        raise ValueError(f"task={spec!r}: expected a task name or a dict describing your own data")
    factory = _FACTORIES.get(_key(spec))
    if factory is None:
        raise ValueError(
            f"unknown task {spec!r}; expected one of {names()}, or your own data "
            "(train_file/validation_file/text_columns/label_column, or text_files for MLM)"
        )
    return factory()


def _own(spec: dict) -> Task:
    if "train_file" in spec or "validation_file" in spec:
        from .own_data import TableConfig, TableTask

        return TableTask(TableConfig.from_dict(spec))
    if "text_files" in spec or "hub" in spec:
        from .mlm import TextConfig, TextTask

        return TextTask(TextConfig.from_dict(spec))
    raise ValueError(
        f"task={spec!r}: own data needs train_file + validation_file (classification/regression) "
        "or text_files / hub (MLM)"
    )


def task_problems(spec: Any) -> list[str]:
    """Everything wrong with a task setting that can be found without reading data."""
    try:
        return get_task(spec).problems()
    except ValueError as e:
        return [f"task={spec!r}: {e}" if isinstance(spec, str) else str(e)]


def _register_builtin() -> None:
    from . import glue, mlm, squad

    glue.register_all(register)
    register("wikitext", mlm.WikiTextTask)
    squad.register_all(register)


_register_builtin()

__all__ = ["HEADS", "MODES", "DataArgs", "Task", "get_task", "names", "register", "task_problems"]
