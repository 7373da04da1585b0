"""The checks that look across a config's sections, run on what the models accepted: a key both fixed and
searched, the baseline's budget, the mode of each metric (from the task), the conditions, the enqueued
points, FlowConfig's own checks at the corners of the space (every combination must build a valid
FlowConfig), the masks against the model's layout, and keys that have no effect."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from ..trainables.config import FlowConfig
from ..trainables.tasks import get_task
from .conditions import condition_problems, sampling_order
from .domain import Domain, same_value, values_of
from .enqueue import check_enqueue
from .flow_keys import FLOW_DEFAULTS
from .pruning import pruning_problems
from .settings import SearchSettings

PLD_KEYS = ("theta_bar", "gamma", "pld_phase")  # no effect unless pld is true


def cross_check(
    search: SearchSettings, fixed: dict, space: dict[str, Domain], raw_fixed: dict, broken: set[str]
) -> tuple[dict[str, Domain], list[str]]:
    """(the space in sampling order, every problem found). Sets `search.mode` where it was left to infer and
    `search.enqueue` to its points read as their fields take them. `raw_fixed`: the section as written (a
    key whose fixed value was rejected is still not searched); `broken`: searched keys rejected already."""
    problems = []
    for key in [k for k in space if k in raw_fixed]:
        problems.append(f"{key}: both fixed ({raw_fixed[key]!r}) and searched; keep it in one section")
        del space[key]
    if search.baseline and not any(k in fixed for k in ("budget_steps", "budget_epochs")):
        problems.append(
            "search.baseline=true: the dense reference needs a fixed budget_steps or budget_epochs "
            "(the same budget every trial replaces)"
        )
    search.enqueue, enqueue_problems = check_enqueue(search.enqueue, fixed, space, broken, search.num_samples)
    problems += enqueue_problems + _infer_mode(search, fixed, space) + _rung_metric(search, fixed, space)
    problems += condition_problems(space, fixed, broken)
    order, cycles = sampling_order(space)
    problems += cycles + _corners(fixed, space) + pruning_problems(fixed, space) + _dead(fixed, space)
    return {k: space[k] for k in order}, problems


def _infer_mode(s: SearchSettings, fixed: dict, space: dict[str, Domain]) -> list[str]:
    """A mode per metric, unless given: the costs are minimised, val_metric goes the way of its task."""
    if s.mode is not None:
        return []
    modes = []
    for m in s.metrics:
        if m != "val_metric":
            modes.append("min")
            continue
        tasks = _task_choices(fixed, space)
        try:
            found = {get_task(t).mode for t in tasks}
        except ValueError:
            return []  # an unknown task: reported at the corners
        if len(found) > 1:
            return [
                f"search.mode: val_metric is maximised on some task choices {list(tasks)} "
                f"and minimised (perplexity) on others; give search.mode explicitly"
            ]
        modes.append(found.pop())
    s.mode = modes if s.multi else modes[0]
    return []


def _task_choices(fixed: dict, space: dict[str, Domain]) -> list:
    return space["task"].corners() if "task" in space else [fixed.get("task", FLOW_DEFAULTS["task"])]


def _rung_metric(s: SearchSettings, fixed: dict, space: dict[str, Domain]) -> list[str]:
    """`rung_metric: val_loss` needs a task with a dev loss, at every task choice."""
    if s.rung_metric != "val_loss":
        return []
    tasks = _task_choices(fixed, space)
    try:
        without = [t for t in tasks if get_task(t).loss_key is None]
    except ValueError:
        return []  # an unknown task: reported at the corners
    return [f"search.rung_metric: val_loss, but task {t!r} reports no dev loss; leave rung_metric out" for t in without]


def _flow_problems(values: dict[str, Any]) -> list[str]:
    """FlowConfig.problems() of these values, without the __post_init__ that would raise on them."""
    inst = object.__new__(FlowConfig)
    for f in fields(FlowConfig):
        setattr(inst, f.name, values.get(f.name, f.default))
    try:
        return inst.problems()
    except Exception as e:  # a value of a type problems() cannot compare: reported by the type checks
        return [f"FlowConfig.problems() failed on {values!r}: {type(e).__name__}: {e}"]


def _corners(fixed: dict, space: dict[str, Domain]) -> list[str]:
    base = {**FLOW_DEFAULTS, **fixed}
    problems = [f"fixed: {p}" for p in _flow_problems(base)]
    seen = set(_flow_problems(base))
    for key, d in space.items():
        for v in d.corners():
            for p in _flow_problems({**base, key: v}):
                if p not in seen:
                    label = "choice" if d.kind == "categorical" else ("low" if v == d.low else "high")
                    problems.append(f"space.{key} ({label} {v!r}): {p}")
                    seen.add(p)
    for label, pick in (("all lows / first choices", 0), ("all highs / last choices", -1)):
        for p in _flow_problems({**base, **{k: d.corners()[pick] for k, d in space.items()}}):
            if p not in seen:
                problems.append(f"space ({label}): {p}")
                seen.add(p)
    return problems


def _dead(fixed: dict, space: dict[str, Domain]) -> list[str]:
    """PLD's keys searched while pld can never be true (a `when` on pld is reported by the conditions)."""
    if any(same_value(v, True) for v in values_of("pld", fixed, space)):
        return []
    origin = "fixed" if "pld" in fixed else "default"
    return [
        f"space.{key}: has no effect, pld is {fixed.get('pld', False)!r} ({origin}); set fixed.pld: true or search pld"
        for key in PLD_KEYS
        if key in space and "pld" not in space[key].when
    ]
