"""The `when` conditions between keys: what they may name, whether they can ever hold, and the order they
impose on sampling (a condition's keys first). Custom: a condition refers to other entries of the config."""

from __future__ import annotations

from .domain import Domain, same_value
from .flow_keys import FLOW_DEFAULTS, FLOW_HINTS, as_field


def condition_problems(space: dict[str, Domain], fixed: dict, broken: set[str]) -> list[str]:
    """Problems of every condition (`broken`: searched keys whose own domain was rejected, already reported).
    Condition values are read as their key's field takes them (`theta_bar: 1e-1` -> 0.1)."""
    problems = []
    for key, d in space.items():
        for ck, values in list(d.when.items()):
            where = f"space.{key}.when.{ck}"
            if ck not in FLOW_HINTS:
                problems.append(f"{where}: unknown key {ck!r}: conditions must name trial keys")
                continue
            values = d.when[ck] = tuple(as_field(ck, v) for v in values)
            if ck == key:
                problems.append(f"{where}: a key cannot be conditioned on itself")
            elif ck in broken:
                continue
            elif ck in space:
                other = space[ck]
                if other.kind != "categorical":
                    problems.append(
                        f"{where}: {ck} is a {other.kind} range; conditions can only name keys "
                        f"searched with choices (or fixed keys)"
                    )
                    continue
                for v in values:
                    if not other.contains(v):
                        problems.append(f"{where}={v!r}: not one of {ck}'s choices {list(other.choices or ())}")
            else:
                actual = fixed.get(ck, FLOW_DEFAULTS[ck])
                origin = "fixed to" if ck in fixed else "not searched, default"
                if not any(same_value(actual, v) for v in values):
                    problems.append(
                        f"{where}={list(values)!r}: never holds ({ck} is {origin} {actual!r}), "
                        f"so {key} would never be sampled"
                    )
    return problems


def sampling_order(space: dict[str, Domain]) -> tuple[list[str], list[str]]:
    """(keys in sampling order: file order, except that a condition's keys come before it; problems)."""
    order: list[str] = []
    problems: list[str] = []
    state: dict[str, int] = {}  # 1: being visited, 2: done

    def visit(k: str, path: list[str]) -> None:
        if state.get(k) == 2:
            return
        if state.get(k) == 1:
            problems.append(f"space: conditions form a cycle: {' -> '.join(path + [k])}")
            return
        state[k] = 1
        for ck in space[k].when:
            if ck in space and ck != k:
                visit(ck, path + [k])
        state[k] = 2
        order.append(k)

    for k in space:
        visit(k, [])
    return order, problems
