"""A SearchSpec as an Optuna define-by-run function, for `ray.tune.search.optuna.OptunaSearch(space_fn(spec))`.

The function suggests every searched key whose `when` condition holds (in the spec's order, so a
condition's keys are sampled first) and returns the sampled values together with the fixed ones: Ray
merges that dict into the trial's config. A key that is not sampled is absent; the trial then uses the
FlowConfig default (e.g. theta_bar when pld is false).

The function is an instance of a module-level class, not a closure: Tune pickles the searcher (and the
function with it) into the experiment folder, and `Tuner.restore` unpickles it.
"""

from __future__ import annotations

import warnings
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from ..trainables.config import FlowConfig
from .domain import Domain, same_value
from .schema import SearchSpec

if TYPE_CHECKING:
    import optuna


def holds(domain: Domain, values: dict[str, Any], sampled: set[str], searched: set[str]) -> bool:
    """Whether `domain`'s `when` condition holds given the values so far.

    A condition on a searched key holds only if that key was sampled in this trial (a key skipped by
    its own condition satisfies nothing); a condition on a fixed key is checked against its value.
    """
    for key, allowed in domain.when.items():
        if key in searched and key not in sampled:
            return False
        if not any(same_value(values.get(key), v) for v in allowed):
            return False
    return True


def suggest(trial: "optuna.Trial", spec: SearchSpec) -> dict[str, Any]:
    """Sample `spec.space` on `trial`; returns {sampled keys..., fixed keys...}."""
    # a condition may name a key that is neither fixed nor searched: it holds against the default
    values: dict[str, Any] = {f.name: f.default for f in fields(FlowConfig)}
    values.update(spec.fixed)
    sampled: dict[str, Any] = {}
    searched = set(spec.space)
    for name, d in spec.space.items():
        if not holds(d, values, set(sampled), searched):
            continue
        if d.kind == "categorical":
            v = trial.suggest_categorical(name, list(d.choices))
        elif d.kind == "int":
            v = trial.suggest_int(name, int(d.low), int(d.high), step=int(d.step or 1), log=d.log)
        else:
            v = trial.suggest_float(name, float(d.low), float(d.high), step=d.step, log=d.log)
        sampled[name] = v
        values[name] = v
    return {**sampled, **spec.fixed}


class SpaceFn:
    """Picklable define-by-run function: `SpaceFn(spec)(trial) -> dict`."""

    def __init__(self, spec: SearchSpec):
        self.spec = spec

    def __call__(self, trial: "optuna.Trial") -> dict[str, Any]:
        if self.spec.search.baseline and trial.number == 0:
            # the dense reference comes first: it samples nothing, so the sampler's model of the space is
            # unchanged, and every later trial can be read against it
            return {**self.spec.fixed, "baseline": True}
        return suggest(trial, self.spec)

    def __repr__(self) -> str:
        return f"SpaceFn({self.spec.name!r}: {list(self.spec.space)})"


def space_fn(spec: SearchSpec) -> SpaceFn:
    """The define-by-run function for `OptunaSearch(space_fn(spec), metric=..., mode=...)`."""
    return SpaceFn(spec)


def sampler_settings(spec: SearchSpec) -> dict[str, Any]:
    """`TPESampler` keyword arguments of the search (also given to other searches compared with it)."""
    return {"seed": spec.search.seed, "multivariate": True, "group": spec.conditional, "constant_liar": True}


def tpe_sampler(**settings: Any) -> "optuna.samplers.TPESampler":
    import optuna

    with warnings.catch_warnings():  # `group` is marked experimental (Optuna 5)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(**settings)


def make_sampler(spec: SearchSpec) -> "optuna.samplers.BaseSampler":
    """A TPE sampler seeded by `search.seed` (Ray ignores OptunaSearch's `seed=` once a sampler is
    given). Multivariate TPE; `group=True` when the space has conditions, so that keys sampled together
    (e.g. the PLD ones when pld is true) are modelled jointly. TPE handles one objective and several."""
    return tpe_sampler(**sampler_settings(spec))
