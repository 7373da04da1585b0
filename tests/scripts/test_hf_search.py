"""The HF arm of the search-against-search benchmark (scripts/benchkit/hf_search.py): a real 2-trial
`Trainer.hyperparameter_search(backend="optuna")` on a tiny random BERT and the CoLA fixture rows."""

import math
from pathlib import Path

import pytest
from benchkit.hf_search import HFRecipe, hf_search, split_trials

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from tickettune.trainables.testing.random_models import write_random_model

    return str(write_random_model("bert", tmp_path_factory.mktemp("m") / "bert", "tiny"))


def test_two_trials_enqueued_point_first_then_seeded_tpe(tiny_bert):
    recipe = HFRecipe(
        model=tiny_bert,
        task="cola",
        epochs=1.0,
        data_root=str(FIXTURES),
        batch_size=4,
        max_length=32,
        threads=1,
        precision="fp32",
        sampler={"seed": 3, "multivariate": True, "constant_liar": True},
    )
    res = hf_search(recipe, n_trials=2, enqueue=[{"learning_rate": 1e-4, "warmup_ratio": 0.1}])
    trials = res["trials"]
    assert [t["number"] for t in trials] == [0, 1] and all(t["state"] == "COMPLETE" for t in trials)
    assert trials[0]["params"] == {"learning_rate": 1e-4, "warmup_ratio": 0.1}
    lr, warm = trials[1]["params"]["learning_rate"], trials[1]["params"]["warmup_ratio"]
    assert 2e-5 <= lr <= 2e-4 and lr != 1e-4 and 0.0 <= warm <= 0.2
    for t in trials:
        assert -1.0 <= t["metric"] <= 1.0  # MCC on the fixture dev rows
        assert t["steps"] == 3  # 11 train rows, batch 4, 1 epoch
        assert 0 < t["train_seconds"] < t["trial_seconds"] and t["eval_seconds"] > 0
    assert res["best"]["metric"] == max(t["metric"] for t in trials)
    assert res["seconds"] >= sum(t["trial_seconds"] for t in trials) - 0.5
    assert not math.isnan(res["best"]["metric"])


def test_trials_split_between_processes_and_bad_jobs():
    assert split_trials(8, 2) == [4, 4] and split_trials(9, 2) == [5, 4] and split_trials(3, 1) == [3]
    with pytest.raises(ValueError, match="jobs=3"):
        hf_search(HFRecipe(model="x", task="cola", epochs=1.0), n_trials=2, jobs=3)


def test_a_pruned_search_evaluates_where_asha_judges_and_keeps_evaluations_out_of_training_time(tiny_bert):
    from benchkit.hf_search import rung_grace

    recipe = HFRecipe(
        model=tiny_bert,
        task="cola",
        epochs=4.0,  # 11 rows, batch 4: 12 steps; evaluations every rung_grace(12) = 3 steps
        data_root=str(FIXTURES),
        batch_size=4,
        max_length=32,
        threads=1,
        precision="fp32",
        sampler={"seed": 3},
        pruner={"n_startup_trials": 1, "n_warmup_steps": 0},
    )
    res = hf_search(recipe, n_trials=2, enqueue=[{"learning_rate": 1e-4, "warmup_ratio": 0.1}])
    assert rung_grace(12) == 3 and rung_grace(3) == 1 and rung_grace(804) == 201
    assert res["recipe"]["pruner"] == {"n_startup_trials": 1, "n_warmup_steps": 0}
    assert res["pruned"] == sum(t["state"] == "PRUNED" for t in res["trials"])
    first = res["trials"][0]  # the pruner's start-up trial: never pruned
    assert first["state"] == "COMPLETE" and first["steps"] == 12 and first["pruned_at"] is None
    assert list(first["evaluations"]) == ["3", "6", "9", "12"]
    assert first["metric"] == first["evaluations"]["12"]  # the trial's value: the evaluation at its last step
    for t in res["trials"]:
        assert 0 < t["train_seconds"] < t["trial_seconds"] and t["eval_seconds"] > 0
        if t["state"] == "PRUNED":  # stopped at a rung: its metric is that rung's evaluation
            assert t["pruned_at"] == t["steps"] and t["metric"] == t["evaluations"][str(t["steps"])]
    assert res["best"]["number"] in {t["number"] for t in res["trials"] if t["state"] == "COMPLETE"}
