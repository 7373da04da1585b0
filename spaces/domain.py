"""Where one FlowConfig key is sampled from: an entry under `space:`, as a pydantic model."""

from __future__ import annotations

from types import NoneType
from typing import Annotated, Any, Literal

from annotated_types import Gt
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .flow_keys import FLOW_DEFAULTS, FLOW_HINTS, fit, numeric_kind, type_name, yaml_float
from .problems import did_you_mean

RANGE_KEYS = ("low", "high", "log", "step", "type")
CHOICE_TYPES = (NoneType, bool, int, float, str)  # what Optuna's suggest_categorical takes
Number = Annotated[FiniteFloat, BeforeValidator(yaml_float)]


class Domain(BaseModel):
    """Where one FlowConfig key is sampled from.

    A range: `low`..`high` (both included), optionally `log` (log-uniform) or `step`, sampled as its field's
    type (`type: int` samples a float field on integers). A categorical: one of `choices`. `when` maps other
    keys to the values they must take for this one to be sampled at all (all of them must hold); otherwise
    the trial uses the FlowConfig default.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str  # the FlowConfig key: the space's key, filled in by the spec
    type: Literal["int", "float"] | None = None  # a range's; when not given, its field's
    low: Number | None = None
    high: Number | None = None
    step: Annotated[Number, Gt(0)] | None = None
    log: bool = False
    choices: tuple | None = Field(None, strict=False)
    when: dict[str, tuple] = {}

    @property
    def kind(self) -> str:
        """'categorical', 'int' or 'float'."""
        return "categorical" if self.choices is not None else str(self.type)

    def corners(self) -> list:
        """The extreme values: both bounds of a range, every choice."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]

    def contains(self, value: Any) -> bool:
        if self.choices is not None:
            return any(same_value(value, c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and not float(value).is_integer():
            return False
        return self.low <= value <= self.high

    def to_dict(self) -> dict:
        """The entry as written in a config (`load_spec` reads it back into an equal Domain)."""
        return self.model_dump(mode="json", exclude={"name"}, exclude_defaults=True)

    # -- validation -----------------------------------------------------------------------------------
    @model_validator(mode="before")
    @classmethod
    def _of_a_flow_key(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            hint = (
                "write {choices: [...]} for a categorical or {low: .., high: ..} for a range"
                if isinstance(raw, list)
                else "a constant belongs under fixed"
            )
            raise ValueError(f"a domain must be a mapping ({hint})")
        if raw.get("name") not in FLOW_HINTS:
            raise ValueError(f"unknown key{did_you_mean(raw.get('name'), FLOW_HINTS)}")
        given = [k for k in RANGE_KEYS if k in raw]
        if "choices" in raw and given:
            raise ValueError(f"choices cannot be combined with {given}")
        kind = numeric_kind(FLOW_HINTS[raw["name"]])
        return raw if "choices" in raw or kind is None else {"type": kind, **raw}

    @field_validator("type")
    @classmethod
    def _int_field_int_range(cls, kind: str | None, info: ValidationInfo) -> str | None:
        if kind == "float" and numeric_kind(FLOW_HINTS[info.data["name"]]) == "int":
            raise ValueError(f"{info.data['name']} takes an int")
        return kind

    @field_validator("low", "high", "step")
    @classmethod
    def _whole_for_int(cls, bound: float | None, info: ValidationInfo) -> float | int | None:
        if bound is None or info.data.get("type") != "int":
            return bound
        if not bound.is_integer():
            raise ValueError(f"must be an int ({info.data['name']} is sampled as int)")
        return int(bound)

    @field_validator("choices")
    @classmethod
    def _fit_choices(cls, choices: tuple | None, info: ValidationInfo) -> tuple | None:
        """Each choice as its FlowConfig field takes it, once."""
        if choices is None:
            return None
        if not choices:
            raise ValueError(": empty list, nothing to choose from")
        values: list = []
        bad = []
        for c in choices:
            if not isinstance(c, CHOICE_TYPES):
                bad.append(f"{c!r} is a {type(c).__name__}; Optuna choices must be None, bool, int, float or str")
                continue
            try:
                c = fit(info.data["name"], c)
            except ValueError as e:
                bad.append(str(e))
                continue
            if any(same_value(c, v) for v in values):
                bad.append(f"{c!r} appears twice")
            values.append(c)
        if bad:
            raise ValueError(": " + "; ".join(bad))
        if len(values) == 1:
            raise ValueError(f"={values!r}: a single choice is a constant; put it under fixed")
        return tuple(values)

    @field_validator("when", mode="before")
    @classmethod
    def _as_tuples(cls, when: Any) -> Any:
        """{key: value or [values]} -> {key: (values...)}."""
        if when is None:
            return {}
        if not isinstance(when, dict) or not when:
            raise ValueError("must be a non-empty mapping key -> value (or list of values)")
        for k, v in when.items():
            if isinstance(v, list) and not v:
                raise ValueError(f".{k}: empty list of values, the condition can never hold")
        return {k: tuple(v) if isinstance(v, list) else (v,) for k, v in when.items()}

    @model_validator(mode="after")
    def _a_range_or_choices(self) -> Domain:
        if self.choices is not None:
            return self
        hint = FLOW_HINTS[self.name]
        if numeric_kind(hint) is None:
            raise ValueError(f"{self.name} is a {type_name(hint)}, not a number: use choices, not a range")
        missing = [k for k in ("low", "high") if getattr(self, k) is None]
        if missing:
            raise ValueError(f"a range needs both low and high (missing {missing}), or give choices")
        problems = []
        if self.low >= self.high:
            problems.append(f"empty range low={self.low!r} >= high={self.high!r}")
        if self.log and self.low <= 0:
            problems.append(f"log range needs low > 0, got low={self.low!r}")
        if self.log and self.step is not None and (self.type == "float" or self.step != 1):
            problems.append(f"log=true cannot be combined with step={self.step!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def same_value(a: Any, b: Any) -> bool:
    """Equality that does not confuse True with 1 or False with 0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def values_of(key: str, fixed: dict, space: dict[str, Domain]) -> list:
    """The values `key` can take in a search: its domain's corners, else its fixed value, else the default."""
    if key in space:
        return space[key].corners()
    return [fixed.get(key, FLOW_DEFAULTS[key])]
