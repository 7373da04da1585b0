"""The search's TPE sampler (spaces/optuna_space.py): its random start-up sized to the search, so that an 8-trial
search samples from the model; and one model over all keys even with a baseline trial that samples none."""

import optuna
import pytest

from tickettune.spaces.optuna_space import make_sampler, sampler_settings, space_fn, startup_trials
from tickettune.spaces.spec import load_spec


def _spec(num_samples: int, baseline: bool = True, enqueue=None):
    return load_spec(
        {
            "name": "x",
            "search": {"num_samples": num_samples, "baseline": baseline, "scheduler": "none", "enqueue": enqueue},
            "fixed": {"task": "sst2", "budget_steps": 500},
            "space": {
                "head_ratio": {"low": 0.1, "high": 0.5},
                "eps": {"low": 0.05, "high": 0.2},
                "lr": {"low": 1.0e-5, "high": 1.0e-3, "log": True},
            },
        }
    )


def test_a_quarter_of_the_trials_at_least_two():
    assert [startup_trials(n) for n in (1, 4, 8, 9, 12, 16, 24, 100)] == [2, 2, 2, 2, 3, 4, 6, 25]
    assert sampler_settings(_spec(8))["n_startup_trials"] == 2  # 8 + the baseline
    assert sampler_settings(_spec(16, baseline=False))["n_startup_trials"] == 4


def _model_sampled(spec, settings_override: dict | None = None) -> dict[int, set]:
    """Run the spec's study as Ray's OptunaSearch does (ask, the define-by-run space, tell), one trial after
    another; returns {trial number: the keys TPE's model sampled together in it}."""
    sampler = make_sampler(spec)
    for k, v in (settings_override or {}).items():
        setattr(sampler, k, v)
    calls: dict[int, set] = {}
    sample = sampler._sample

    def spy(study, trial, search_space):
        calls.setdefault(trial.number, set()).add(tuple(sorted(search_space)))
        return sample(study, trial, search_space)

    sampler._sample = spy
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(directions=["maximize"], sampler=sampler)
    points = spec.search.enqueue or []
    for point in ([{}] if spec.search.baseline and points else []) + points:  # as searcher/search.py enqueues them
        study.enqueue_trial(point)
    fn = space_fn(spec)
    for _ in range(spec.search.total_trials):
        trial = study.ask()
        cfg = fn(trial)
        study.tell(trial, cfg.get("head_ratio", 0.3) - abs(cfg.get("lr", 1e-4) - 1e-4) * 100)
    return calls


def test_an_eight_trial_search_samples_from_the_model_after_its_start_up():
    spec = _spec(8)
    calls = _model_sampled(spec)
    # trial 0 is the baseline, trial 1 random (one finished trial, the start-up is 2); the other 7 from the model,
    # all three keys together (the baseline, which has none of them, does not split the joint model)
    assert calls == {n: {("eps", "head_ratio", "lr")} for n in range(2, 9)}
    assert _model_sampled(spec, {"_n_startup_trials": 10}) == {}  # Optuna's default: all random


def test_enqueued_points_and_the_baseline_fill_the_start_up():
    spec = _spec(8, enqueue=[{"head_ratio": 0.333, "lr": 1.0e-4}, {"head_ratio": 0.25}])
    calls = _model_sampled(spec)
    # trials 1 and 2 are the enqueued points (trial 2's eps and lr: from the model, 2 trials have finished)
    assert sorted(calls) == list(range(2, 9))


@pytest.mark.parametrize("baseline", [False, True])
def test_one_group_for_a_static_space_with_or_without_the_baseline(baseline):
    assert sampler_settings(_spec(8, baseline=baseline))["group"] is baseline
