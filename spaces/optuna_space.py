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


def startup_trials(total_trials: int) -> int:
    """TPE's random start-up trials for a search of `total_trials` (the baseline and enqueued points included).

    Optuna's default, 10, suits searches of a hundred trials: in one of 8 no trial is ever chosen by the model.
    Optuna counts every finished trial of the study toward the start-up, the baseline (no parameters) and the
    enqueued points too, so they fill it first. A quarter of the trials leaves three quarters to the model;
    at least 2, so that TPE has a better and a worse group to split."""
    return max(2, total_trials // 4)


def sampler_settings(spec: SearchSpec) -> dict[str, Any]:
    """`TPESampler` keyword arguments of the search (also given to other searches compared with it)."""
    return {
        "seed": spec.search.seed,
        "multivariate": True,
        # trials with different sets of keys (conditions; the baseline, which samples none): modelled per group.
        # Without it one such trial empties the joint space and multivariate TPE samples each key on its own
        "group": spec.conditional or spec.search.baseline,
        "constant_liar": True,
        "n_startup_trials": startup_trials(spec.search.total_trials),
    }


def tpe_sampler(**settings: Any) -> "optuna.samplers.TPESampler":
    import optuna

    with warnings.catch_warnings():  # `group` is marked experimental (Optuna 5)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(**settings)


def make_sampler(spec: SearchSpec) -> "optuna.samplers.BaseSampler":
    """A TPE sampler seeded by `search.seed` (Ray ignores OptunaSearch's `seed=` once a sampler is
    given). Multivariate TPE; `group=True` when the space has conditions or a baseline, so that keys sampled
    together (e.g. the PLD ones when pld is true) are modelled jointly; start-up trials sized to the search
    (`startup_trials`). TPE handles one objective and several."""
    return tpe_sampler(**sampler_settings(spec))
