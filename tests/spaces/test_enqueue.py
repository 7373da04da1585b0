"""`search.enqueue`: validated like every other field, and handed to Optuna after the baseline trial."""

import copy

import pytest

from tickettune.searcher.search import make_searcher, points_to_evaluate
from tickettune.spaces import load_spec
from tickettune.spaces.schema import SpecError

BASE = {
    "name": "enq",
    "storage": "/tmp/tickettune-enqueue-test",
    "search": {
        "num_samples": 3,
        "objective": "multi",
        "metric": ["val_metric", "relative_time"],
        "scheduler": "none",
        "baseline": True,
        "seed": 0,
    },
    "fixed": {"model": "minilm-l6", "task": "sst2", "budget_steps": 200, "search_max_steps": 50},
    "space": {
        "lr": {"low": 2.0e-5, "high": 2.0e-4, "log": True},
        "ticket_mode": {"choices": ["rewind", "continue"]},
        "ticket_lr": {"low": 2.0e-5, "high": 2.0e-4, "log": True, "when": {"ticket_mode": "rewind"}},
        "head_ratio": {"low": 0.25, "high": 0.6},
    },
}


def spec_with(enqueue):
    d = copy.deepcopy(BASE)
    d["search"]["enqueue"] = enqueue
    return d


def problems(enqueue) -> list[str]:
    with pytest.raises(SpecError) as e:
        load_spec(spec_with(enqueue))
    return e.value.problems


def test_valid_points_load_and_round_trip():
    spec = load_spec(spec_with([{"lr": "1e-4", "ticket_mode": "rewind", "ticket_lr": 1.0e-4}, {"head_ratio": 0.25}]))
    assert spec.search.enqueue == [{"lr": 1e-4, "ticket_mode": "rewind", "ticket_lr": 1e-4}, {"head_ratio": 0.25}]
    assert load_spec(spec.to_dict()).search.enqueue == spec.search.enqueue
    assert load_spec(BASE).search.enqueue is None


def test_each_bad_point_is_named():
    p = problems(
        [
            {"lr": 1.0e-3},
            {"budget_steps": 10},
            {"head_ration": 0.3},
            {"ticket_mode": "both"},
            [],
            {"ticket_lr": 1.0e-4},
            {"ticket_mode": "continue", "ticket_lr": 1.0e-4},
        ]
    )
    text = "\n".join(p)
    assert "search.enqueue[0].lr=0.001: outside its domain" in text
    assert "search.enqueue[1].budget_steps: budget_steps is fixed (200)" in text
    assert "search.enqueue[2].head_ration: unknown key" in text
    assert "search.enqueue[3].ticket_mode='both': outside its domain (must be one of ['rewind', 'continue'])" in text
    assert "search.enqueue[4]=[]: must be a non-empty mapping" in text
    assert "search.enqueue[5].ticket_lr: sampled only when ticket_mode is in ['rewind']; give ticket_mode" in text
    assert (
        "search.enqueue[6].ticket_lr: sampled only when ticket_mode is in ['rewind'], and this point has "
        "ticket_mode='continue'" in text
    )
    assert "7 points for num_samples=3" in text


def test_not_a_list():
    msg = "search.enqueue={'lr': 0.0001}: must be a list of mappings (searched key -> value)"
    assert problems({"lr": 1.0e-4}) == [msg]


def test_the_baseline_keeps_trial_0_and_the_points_come_next():
    spec = load_spec(spec_with([{"lr": 1.0e-4, "ticket_mode": "continue", "head_ratio": 0.3}, {"lr": 3.0e-5}]))
    assert points_to_evaluate(spec) == [{}, {"lr": 1e-4, "ticket_mode": "continue", "head_ratio": 0.3}, {"lr": 3e-5}]
    searcher = make_searcher(spec)
    configs = []
    for i in range(4):
        configs.append(searcher.suggest(f"t{i}"))
        searcher.on_trial_complete(f"t{i}", {"val_metric": 0.5, "relative_time": 0.5})
    assert configs[0].get("baseline") is True and "lr" not in configs[0]
    assert (configs[1]["lr"], configs[1]["ticket_mode"], configs[1]["head_ratio"]) == (1e-4, "continue", 0.3)
    assert configs[2]["lr"] == 3e-5 and "head_ratio" in configs[2]  # the rest sampled
    assert not configs[3].get("baseline") and configs[3]["lr"] not in (1e-4, 3e-5)
