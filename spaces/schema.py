"""What a search config is: the file's top level as a pydantic model (SpecFile), what `load_spec` makes of it
(SearchSpec), and SpecError, the one error that lists every problem."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from ..trainables.config import FlowConfig
from .domain import Domain
from .flow_keys import Fixed, absolute
from .settings import SearchSettings


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


class SpecFile(BaseModel):
    """A search config as written: five sections, each optional (see spec.py)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(
        "search",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="a non-empty string of letters, digits, '.', '_', '-' (it names the experiment folder)",
    )
    storage: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        "runs", description="a non-empty path"
    )
    search: SearchSettings = Field(default_factory=SearchSettings)
    fixed: Fixed = Field(default_factory=Fixed)  # type: ignore[valid-type]
    space: dict[str, Domain] = {}

    @field_validator("search", "fixed", "space", mode="before")
    @classmethod
    def _sections(cls, section: Any, info: ValidationInfo) -> Any:
        """An empty section (`fixed:`) holds nothing; each domain learns its key."""
        section = {} if section is None else section
        if info.field_name == "space" and isinstance(section, dict):
            return {k: {**v, "name": k} if isinstance(v, dict) else v for k, v in section.items()}
        return section

    @field_validator("storage")
    @classmethod
    def _absolute(cls, storage: str) -> str:
        """Relative to the current directory, as Ray trials run in their own; a URI (s3://...) stays."""
        return storage if "://" in storage else absolute(storage)


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
        return {
            "name": self.name,
            "storage": self.storage,
            "search": self.search.model_dump(),
            "fixed": copy.deepcopy(self.fixed),
            "space": {k: d.to_dict() for k, d in self.space.items()},
        }
