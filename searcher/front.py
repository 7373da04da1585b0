"""The Pareto front of a multi-objective search: the points no other point beats on every objective.

One function for every place that needs it (the export of a search's front, `tickettune report`, the
search-against-search benchmark), on plain values so that trials of any origin can be compared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a, b: values to *minimise*; a is no worse everywhere and better somewhere."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def non_dominated(points: Sequence[Sequence[float]], modes: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points, sorted by the first objective from best to worst (ties: by the
    next objectives). `modes[i]` is "max" or "min" for objective i. Points with a NaN are never on the
    front (a trial that reported nothing usable); equal points are all kept."""
    if any(m not in ("max", "min") for m in modes):
        raise ValueError(f"modes={list(modes)!r}: each must be 'max' or 'min'")
    sign = [-1.0 if m == "max" else 1.0 for m in modes]
    vals = [[s * float(v) for s, v in zip(sign, p)] for p in points]
    ok = [i for i, v in enumerate(vals) if len(v) == len(modes) and not any(math.isnan(x) for x in v)]
    front = [i for i in ok if not any(dominates(vals[j], vals[i]) for j in ok if j != i)]
    return sorted(front, key=lambda i: vals[i])
