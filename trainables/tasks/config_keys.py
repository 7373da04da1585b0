"""Config dataclasses read from dicts a user wrote: which keys they do not know (each names its own error)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any


def unknown_keys(cls: type, d: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(keys of `d` that are not fields of the dataclass `cls`, its field names), both sorted."""
    known = sorted(f.name for f in fields(cls))
    return sorted(set(d) - set(known)), known
