"""`search.enqueue`: settings the sampler tries first, before it samples anything itself.

    search:
      num_samples: 8
      enqueue:                                   # trials 1.. (after the baseline, if any), in this order
        - {lr: 1.0e-4, ticket_mode: continue, head_ratio: 0.333, ffn_ratio: 0.4, eps: 0.1}   # the paper's point
        - {lr: 3.0e-5, head_ratio: 0.25, ffn_ratio: 0.3}                                      # a conservative one

Why: a search of ~8 trials has room for a few start-up trials only (`optuna_space.startup_trials`: a quarter
of them, counting these points and the baseline), so a known-good point (and a safe one) should be among
them rather than a random draw. Each point is a mapping of *searched* keys to values inside their domains;
keys left out are sampled as usual. The points reach `ray.tune.search.optuna.OptunaSearch(points_to_evaluate=
...)`, which enqueues them in the study.
"""

from __future__ import annotations

from typing import Any

from .domain import Domain, same_value
from .flow_keys import FLOW_HINTS, as_field


def check_enqueue(
    raw: Any, fixed: dict, space: dict[str, Domain], broken: set[str], num_samples: int
) -> tuple[list[dict] | None, list[str]]:
    """(points, problems): the validated points (values coerced to their field's type), or None when
    `raw` is null; one problem string per bad point, key or value, each naming it."""
    if raw is None:
        return None, []
    if not isinstance(raw, list):
        return None, [f"search.enqueue={raw!r}: must be a list of mappings (searched key -> value)"]
    problems: list[str] = []
    if len(raw) > num_samples:
        problems.append(
            f"search.enqueue: {len(raw)} points for num_samples={num_samples}: the points beyond "
            f"the {num_samples}th would never run"
        )
    points = []
    for i, point in enumerate(raw):
        where = f"search.enqueue[{i}]"
        if not isinstance(point, dict) or not point:
            problems.append(f"{where}={point!r}: must be a non-empty mapping of searched keys to values")
            continue
        out: dict[str, Any] = {}
        for key, value in point.items():
            if key in broken:
                continue  # its domain is already reported
            if key in fixed:
                problems.append(
                    f"{where}.{key}: {key} is fixed ({fixed[key]!r}), not searched; only searched keys can be enqueued"
                )
                continue
            if key not in space:
                known = "a FlowConfig key that is not searched" if key in FLOW_HINTS else "unknown key"
                problems.append(f"{where}.{key}: {known}; the searched keys are {list(space)}")
                continue
            value = as_field(key, value)
            d = space[key]
            if not d.contains(value):
                inside = f"one of {list(d.choices)}" if d.kind == "categorical" else f"in [{d.low}, {d.high}]"
                problems.append(f"{where}.{key}={value!r}: outside its domain (must be {inside})")
                continue
            out[key] = value
        for key in out:
            for ck, allowed in space[key].when.items():
                have = out.get(ck, fixed.get(ck))
                if ck in space and ck not in point:
                    problems.append(
                        f"{where}.{key}: sampled only when {ck} is in {list(allowed)}; give {ck} in the same point"
                    )
                elif ck not in space and ck not in fixed:
                    continue  # a condition on a default value: spec validation reports it if it never holds
                elif not any(same_value(have, v) for v in allowed):
                    problems.append(
                        f"{where}.{key}: sampled only when {ck} is in {list(allowed)}, and this point has {ck}={have!r}"
                    )
        points.append(out)
    return points, problems
