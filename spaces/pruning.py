"""The masks against the model's layout: no setting the search can take may empty a layer, and no ratio may
be one the per-layer minimum overrides. Custom: it needs the model's shape (read from its config.json, or
the scratch model's settings) and every combination of ratio, minimum and scope the search can reach."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..trainables.earlybert.masks import SCOPES, n_prune
from .domain import Domain, values_of

# A model whose layout is known without reading anything (checked against its config.json when present)
KNOWN_SHAPES = {"minilm-l6": (6, 12, 1536)}  # layers, heads per layer, FFN width per layer
MASKS = (  # what is pruned: its ratio, minimum and scope keys, and what a user calls it
    ("heads", "head_ratio", "min_heads", "head_scope", "heads"),
    ("ffn", "ffn_ratio", "min_ffn", "ffn_scope", "FFN neurons"),
)


def pruning_problems(fixed: dict, space: dict[str, Domain]) -> list[str]:
    problems: list[str] = []
    shapes = _shapes(fixed, space, problems)
    for kind, ratio_key, min_key, scope_key, what in MASKS:
        mins = values_of(min_key, fixed, space)
        scopes = values_of(scope_key, fixed, space)
        for m in mins:
            if isinstance(m, bool) or not isinstance(m, int) or m < 1:
                problems.append(
                    f"{_where(min_key, fixed, space)}: {min_key}={m!r} must be an int >= 1: "
                    f"a layer could lose all its {what}"
                )
        for s in scopes:
            if s not in SCOPES:
                problems.append(f"{_where(scope_key, fixed, space)}: {scope_key}={s!r}: expected one of {list(SCOPES)}")
        ratios = [r for r in values_of(ratio_key, fixed, space) if _number(r) and 0 <= r < 1]
        mins = [m for m in mins if _number(m) and isinstance(m, int) and m >= 1]
        scopes = [s for s in scopes if s in SCOPES]
        for label, shape in shapes:
            for r in ratios:
                for m in mins:
                    for s in scopes:
                        msg = _prune_problem(shape[kind], r, m, s, ratio_key, min_key, what)
                        if msg and f"{msg} in {label}" not in problems:
                            problems.append(f"{msg} in {label}")
    return problems


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _where(key: str, fixed: dict, space: dict) -> str:
    return f"space.{key}" if key in space else f"fixed.{key}" if key in fixed else f"{key} (default)"


def _shapes(fixed: dict, space: dict[str, Domain], problems: list[str]) -> list[tuple[str, dict]]:
    """(label, {"heads": per-layer heads, "ffn": per-layer FFN widths}) for every model the search can train."""
    out = []
    scratch = values_of("scratch", fixed, space)
    for sc in scratch:
        shape = _scratch_shape(sc, problems) if sc is not None else None
        if shape is not None:
            out.append(("the scratch model", shape))
    if any(sc is None for sc in scratch):
        for model in values_of("model", fixed, space):
            shape = _model_shape(model, problems)
            if shape is not None:
                out.append((f"model {model!r}", shape))
    return out


def _scratch_shape(d: Any, problems: list[str]) -> dict | None:
    from ..trainables.model.build import scratch_from_dict

    if not isinstance(d, dict):
        return None
    try:
        sc = scratch_from_dict(d)
    except (ValueError, TypeError) as e:
        problems.append(f"fixed.scratch={d!r}: {e}")
        return None
    return {"heads": [sc.heads] * sc.layers, "ffn": [sc.ffn] * sc.layers}


def _model_shape(model: Any, problems: list[str]) -> dict | None:
    from ..trainables.model.build import model_path
    from ..trainables.model.families import UnsupportedModel, family_of

    if not isinstance(model, str):
        return None
    try:
        folder = model_path(model)
    except FileNotFoundError as e:
        problems.append(f"model={model!r}: {e}")
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
        problems.append(str(e))
    except (ValueError, KeyError, TypeError) as e:
        problems.append(f"model={model!r}: cannot read its layout from {cfg_file}: {type(e).__name__}: {e}")
    return None


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
