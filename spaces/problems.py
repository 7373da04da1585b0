"""How a pydantic error reads to a user: one line naming the YAML path, the value and what was expected.

    fixed.window='five': must be an int
    search.gpus_per_trial=-1: must be a number >= 0 or null (null: one GPU per worker where ...)
    fixed.max_lenght: unknown key; did you mean 'max_length'?

What was expected comes from the field's type and constraints (or its `description`, where that says more).
A message our own validators raise reads `path=value: message`, or `path: message` when the value is a whole
mapping; a message that starts with '=', ':' or '.' continues the path as it stands (`search.metric: 'x' ...`).
"""

from __future__ import annotations

import difflib
import typing
from types import NoneType
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from .flow_keys import members

_NAMES = {int: "an int", float: "a number", bool: "true or false", str: "a string", dict: "a mapping", list: "a list"}
_NAMES[tuple] = "a list"  # YAML has no tuples: a list is read into one


def did_you_mean(key: Any, known: Iterable[str]) -> str:
    """'; did you mean 'x'?' for a near miss, else the list of known keys."""
    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else f"; expected one of {sorted(known)}"


def problem_lines(error: ValidationError, root: type[BaseModel]) -> list[str]:
    """One line per problem (a union's members failing alike read as one)."""
    return list(dict.fromkeys(_line(e, root) for e in error.errors(include_url=False)))


def _line(error: dict, root: type[BaseModel]) -> str:
    keys, field, parent = _walk(root, error["loc"])
    path = ".".join(str(k) for k in keys)
    value = error["input"]
    if error["type"] == "extra_forbidden":
        hint = did_you_mean(keys[-1], parent.model_fields)
        return f"unknown top-level key {keys[-1]!r}{hint}" if len(keys) == 1 else f"{path}: unknown key{hint}"
    if error["type"] == "value_error":
        msg = str(error["ctx"]["error"])
        if msg[:1] in ("=", ":", "."):
            return path + msg
        return f"{path}: {msg}" if isinstance(value, dict) else f"{path}={value!r}: {msg}"
    return f"{path}={value!r}: must be {expected(field)}"


def _walk(root: type[BaseModel], loc: tuple) -> tuple[list, FieldInfo | None, type[BaseModel]]:
    """(the YAML keys in `loc`, the field they lead to, the model that field belongs to); the rest of `loc`
    names union members, which are no keys of the file."""
    keys: list = []
    field, here, parent = None, root, root
    for item in loc:
        if isinstance(here, type) and issubclass(here, BaseModel):
            keys.append(item)
            parent, field = here, here.model_fields.get(item)
            if field is None:  # an unknown key
                break
            here = _unwrap(field.annotation)
        elif typing.get_origin(here) is dict:  # a key of a mapping such as `space`
            keys.append(item)
            here = _unwrap(typing.get_args(here)[1])
        else:
            break
    return keys, field, parent


def _unwrap(hint: Any) -> Any:
    """`X | None` -> X, `Annotated[X, ...]` -> X."""
    if typing.get_origin(hint) is typing.Annotated:
        return _unwrap(typing.get_args(hint)[0])
    args = [a for a in members(hint) if a is not NoneType]
    return _unwrap(args[0]) if len(args) == 1 and args[0] is not hint else hint


def expected(field: FieldInfo | None) -> str:
    """'an int >= 1 or null', 'one of ['asha', 'none']', ... from the field's type and constraints."""
    if field is None:
        return "valid"
    if field.description:
        return field.description
    return _describe(field.annotation, field.metadata)


def _describe(hint: Any, metadata: Iterable = ()) -> str:
    if typing.get_origin(hint) is typing.Annotated:
        base, *more = typing.get_args(hint)
        return _describe(base, [*metadata, *more])
    kinds = [k for k in members(hint) if k is not NoneType]
    text = _name(hint) if kinds == [hint] else " or ".join(dict.fromkeys(_describe(k) for k in kinds))
    for m in metadata:
        if getattr(m, "min_length", None):
            text = text.replace("a ", "a non-empty ", 1)
        if getattr(m, "allow_inf_nan", None) is False:
            text = text.replace("a ", "a finite ", 1)
        for attr, op in (("ge", ">="), ("gt", ">")):
            if getattr(m, attr, None) is not None:
                text += f" {op} {getattr(m, attr)}"
    return text + (" or null" if NoneType in members(hint) else "")


def _name(kind: Any) -> str:
    if typing.get_origin(kind) is typing.Literal:
        return f"one of {list(typing.get_args(kind))}"
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return "a mapping"
    return _NAMES.get(typing.get_origin(kind) or kind, str(kind))
