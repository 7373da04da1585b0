"""Search spaces as data: loading, validation (all problems at once), the Optuna define-by-run function."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import optuna
import pytest

from tickettune.spaces.optuna_space import make_sampler, space_fn, suggest
from tickettune.spaces.spec import SearchSpec, SpecError, load_spec
from tickettune.trainables.config import FlowConfig

SPACES = Path(__file__).resolve().parents[2] / "spaces"
SHIPPED = sorted(SPACES.glob("*.yaml"))
PLD_KEYS = {"pld_phase", "theta_bar", "gamma"}

optuna.logging.set_verbosity(optuna.logging.WARNING)


def minimal(**space) -> dict:
    return {
        "name": "t",
        "fixed": {"model": "minilm-l6", "task": "sst2"},
        "space": space or {"head_ratio": {"low": 0.2, "high": 0.5}},
    }


def problems_of(config) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(config)
    assert isinstance(info.value, ValueError)
    return info.value.problems


def study_for(spec: SearchSpec, sampler=None) -> optuna.Study:
    directions = ["maximize" if m == "max" else "minimize" for m in spec.search.modes]
    return optuna.create_study(directions=directions, sampler=sampler or make_sampler(spec))


# -- the shipped configs --------------------------------------------------------------------------------


def test_all_four_configs_are_shipped():
    assert {p.stem for p in SHIPPED} >= {"earlybert", "pld", "union", "demo", "squad"}


def test_the_squad_space_searches_earlybert_on_qa_against_its_dense_run():
    qa = load_spec(SPACES / "squad.yaml")
    assert qa.fixed["task"] == "squad" and qa.search.mode == ["max", "min"]  # F1 up, time down
    assert qa.fixed["max_length"] >= 256 and qa.search.baseline  # run_qa-sized windows; the dense run's trial
    assert {"head_ratio", "ffn_ratio", "lambda_head", "lambda_ffn", "eps", "lr"} <= set(qa.space)
    cfg = qa.flow_config({})
    assert cfg.task_obj.main_metric == "f1" and cfg.search_max_steps < 110  # the search leaves ticket steps


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_config_loads_and_every_corner_builds_a_flow_config(path):
    spec = load_spec(path)
    assert spec.source == str(path)
    assert Path(spec.storage).is_absolute()
    assert spec.space, "a shipped search searches something"
    # every corner, and values sampled from the define-by-run function, make a valid FlowConfig
    for key, d in spec.space.items():
        for v in d.corners():
            spec.flow_config({key: v})
    study = study_for(spec, optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        spec.flow_config(suggest(study.ask(), spec))


def test_shipped_configs_say_what_the_issue_asks():
    eb = load_spec(SPACES / "earlybert.yaml")
    assert {"head_ratio", "ffn_ratio", "lambda_head", "lambda_ffn", "eps", "window", "mask_interval", "lr"} <= set(
        eb.space
    )
    pld = load_spec(SPACES / "pld.yaml")
    assert {"theta_bar", "gamma"} <= set(pld.space) and pld.fixed["pld"] is True
    assert pld.search.mode == "min"  # perplexity: inferred from the MLM task
    union = load_spec(SPACES / "union.yaml")
    assert set(eb.space) | {"pld", "theta_bar", "gamma"} <= set(union.space)
    assert all(union.space[k].when == {"pld": (True,)} for k in PLD_KEYS & set(union.space))
    assert list(union.space).index("pld") < min(list(union.space).index(k) for k in PLD_KEYS & set(union.space))
    demo = load_spec(SPACES / "demo.yaml")
    assert demo.fixed["model"] == "minilm-l6" and demo.fixed["task"] == "sst2"
    # small enough for `make demo` on a 2-core CPU: a handful of short trials, one at a time
    assert demo.search.num_samples <= 6 and demo.search.max_concurrent is None  # derived: never deadlocks
    assert demo.fixed["max_train_samples"] <= 4000 and demo.fixed["max_length"] <= 64
    assert demo.fixed["search_max_steps"] + demo.fixed["ticket_steps"] <= 600


def test_the_readme_example_is_valid():
    import re

    import yaml

    text = (SPACES / "README.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    spec = load_spec(yaml.safe_load(block))
    assert spec.name == "sst2-minilm" and spec.space["theta_bar"].when == {"pld": (True,)}
    assert spec.space["mask_interval"].kind == "int" and spec.space["lr"].step == 1e-5


# -- validation -----------------------------------------------------------------------------------------


def test_a_bad_config_reports_every_problem_in_one_error():
    bad = {
        "name": "bad",
        "colour": "blue",  # unknown top-level key
        "search": {"num_samples": 0, "scheduler": "hyperband", "metric": "accuracy", "patience": 3},
        "fixed": {
            "model": "minilm-l6",
            "task": "sst3",
            "lambda_ffn": -1e-4,
            "eps": 1.5,
            "min_heads": 0,
            "max_lenght": 128,
            "head_ratio": 0.3,
            "window": "five",
        },
        "space": {
            "head_ratio": {"low": 0.2, "high": 0.5},  # also fixed
            "ffn_ratio": {"low": 0.6, "high": 0.4},  # empty range
            "lambda_head": {"low": 0.0, "high": 1e-3, "log": True},  # log range from 0
            "mask_interval": {"choices": []},  # empty choices
            "theta_bar": {"low": 0.5, "high": 1.2, "when": {"pld_on": True}},  # unknown condition key
            "gamma": {"low": 1e-3, "high": 1e-2, "when": {"pld": "yes"}},  # value not among pld's choices
            "pld": {"choices": [False, True]},
            "bogus": {"low": 1, "high": 2},  # unknown space key
            "lr": {"low": 1e-5, "high": 1e-3, "log": True, "step": 1e-5},
            "batch_size": {"choices": [16, "32"]},  # bad type
            "ticket_lr": 3e-4,  # a constant in space
        },
    }
    problems = problems_of(bad)
    text = "\n".join(problems)
    expected = [
        "unknown top-level key 'colour'",
        "search.num_samples=0",
        "search.scheduler='hyperband'",
        "search.metric: 'accuracy'",
        "search.patience: unknown key",
        "fixed.max_lenght: unknown key",
        "fixed.window='five'",
        "head_ratio: both fixed (0.3) and searched",
        "space.ffn_ratio: empty range low=0.6 >= high=0.4",
        "space.lambda_head: log range needs low > 0",
        "space.mask_interval.choices: empty",
        "space.theta_bar.when.pld_on: unknown key",
        "space.gamma.when.pld='yes': not one of pld's choices",
        "space.bogus: unknown key",
        "space.lr: log=true cannot be combined with step",
        "space.batch_size.choices: '32'",
        "space.ticket_lr=0.0003: a domain must be a mapping",
        "task='sst3'",
        "lambda_ffn=-0.0001 must be >= 0",
        "eps=1.5 must be in [0, 1]",
        "theta_bar=1.2 must be in (0, 1]",
        "min_heads=0 must be an int >= 1",
    ]
    missing = [e for e in expected if e not in text]
    assert not missing, f"missing {missing} in:\n{text}"
    assert len(problems) >= len(expected)
    # one error, and its message lists them all
    with pytest.raises(ValueError, match=r"invalid search config \(\d+ problems\)"):
        load_spec(bad)


def test_yaml_file_problems_include_duplicate_keys(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("fixed:\n  task: sst2\n  task: cola\nspace:\n  eps: {low: 0.5, high: 0.1}\n")
    problems = problems_of(path)
    assert any("'task' appears twice" in p for p in problems)
    assert any("space.eps: empty range" in p for p in problems)
    assert problems_of(tmp_path / "missing.yaml") == [f"no such config file: {tmp_path / 'missing.yaml'}"]
    (tmp_path / "broken.yaml").write_text("space: {eps: [\n")
    assert "not valid YAML" in problems_of(tmp_path / "broken.yaml")[0]


@pytest.mark.parametrize(
    "fixed, space, needle",
    [
        ({"head_ratio": 1.0}, {}, "head_ratio=1.0 must be in [0, 1)"),
        ({}, {"head_ratio": {"low": -0.1, "high": 0.3}}, "head_ratio=-0.1 must be in [0, 1)"),
        ({}, {"ffn_ratio": {"choices": [0.2, 1.0]}}, "ffn_ratio=1.0 must be in [0, 1)"),
        ({}, {"lambda_head": {"low": -1.0, "high": 1.0}}, "lambda_head=-1.0 must be >= 0"),
        ({}, {"eps": {"low": 0.1, "high": 1.5}}, "eps=1.5 must be in [0, 1]"),
        ({"min_ffn": 0}, {}, "min_ffn=0 must be an int >= 1"),
        ({"min_heads": 5, "head_ratio": 0.75}, {}, "keeps 3 of 12 heads per layer, below min_heads=5"),
        ({"min_ffn": 1536}, {}, "min_ffn=1536 is at least the layer width"),
        (
            {"min_ffn": 1000, "ffn_scope": "global"},
            {"ffn_ratio": {"low": 0.1, "high": 0.5}},
            "asks to prune 4608 of 9216 FFN neurons, but min_ffn=1000",
        ),
        ({"head_scope": "model"}, {}, "head_scope='model': expected one of"),
        ({"window": 1}, {}, "window=1 must be >= 2"),
        ({}, {"window": {"low": 1, "high": 5}}, "window=1 must be >= 2"),
        ({}, {"mask_interval": {"low": 2.5, "high": 10}}, "mask_interval.low=2.5: must be an int"),
        ({}, {"window": {"low": 2, "high": 5, "type": "float"}}, "window takes an int"),
        ({}, {"pld": {"low": 0, "high": 1}}, "use choices, not a range"),
        ({}, {"eps": {"choices": [0.1]}}, "a single choice is a constant"),
        ({}, {"eps": {"low": 0.1, "high": 0.2, "choices": [0.1]}}, "choices cannot be combined"),
        ({}, {"eps": {"low": 0.1}}, "needs both low and high"),
        ({}, {"theta_bar": {"low": 0.5, "high": 0.9}}, "space.theta_bar: has no effect, pld is False"),
        ({"pld": False}, {"theta_bar": {"low": 0.5, "high": 0.9, "when": {"pld": True}}}, "never holds"),
        ({}, {"eps": {"low": 0.1, "high": 0.2, "when": {"window": 3}}}, "never holds"),
        (
            {},
            {"window": {"low": 3, "high": 5}, "eps": {"low": 0.1, "high": 0.2, "when": {"window": 3}}},
            "conditions can only name keys searched with choices",
        ),
        (
            {},
            {
                "pld": {"choices": [True, False], "when": {"ticket_mode": ["rewind"]}},
                "ticket_mode": {"choices": ["rewind", "continue"], "when": {"pld": True}},
            },
            "conditions form a cycle",
        ),
        ({"scratch": {"layers": 2, "heads": 3, "hidden": 64}}, {}, "not a multiple of heads"),
        ({"model": "./no/such/model"}, {}, "does not exist"),
        ({"data_root": "/no/such/data"}, {}, "fixed.data_root='/no/such/data': no such folder"),
    ],
)
def test_single_problems_name_the_key_and_value(fixed, space, needle):
    config = {
        "fixed": {"model": "minilm-l6", "task": "sst2", **fixed},
        "space": space or {"lr": {"low": 1e-5, "high": 1e-4}},
    }
    text = "\n".join(problems_of(config))
    assert needle in text, text


@pytest.mark.parametrize(
    "section, value, needle",
    [
        ("fixed", {"task": 5}, "fixed.task=5: must be a string or a mapping"),  # a union's two failures: one line
        ("fixed", {"max_length": True}, "fixed.max_length=True: must be an int"),
        ("fixed", {"lr": "1e-4x"}, "fixed.lr='1e-4x': must be a number"),
        ("space", {"eps": {"lo": 0.1, "high": 0.3}}, "space.eps.lo: unknown key; did you mean 'low'?"),
        ("space", {"lr": {"low": 1e-5, "high": float("inf")}}, "space.lr.high=inf: must be a finite number"),
        ("space", {"window": {"choices": [3, 3, 4.5]}}, "space.window.choices: 3 appears twice; 4.5 is a float"),
        ("search", {"scheduler": "hyperband"}, "search.scheduler='hyperband': must be one of ['asha', 'none']"),
        ("search", [1], "search=[1]: must be a mapping"),
    ],
)
def test_type_problems_say_path_value_and_what_was_expected(section, value, needle):
    config = {**minimal(), section: value}
    problems = problems_of(config)
    assert needle in "\n".join(problems), problems
    assert len(problems) == 1, problems


@pytest.mark.parametrize(
    "search, needle",
    [
        ({"objective": "multi", "metric": "val_metric"}, "objective multi needs a list"),
        ({"objective": "single", "metric": ["val_metric", "relative_cost"]}, "a list means objective: multi"),
        ({"metric": "val_metric", "mode": "up"}, "each mode must be one of"),
        ({"objective": "multi", "mode": "max"}, "give one mode per metric"),
        ({"max_concurrent": 0}, "search.max_concurrent=0"),
        ({"cpus_per_worker": -1}, "search.cpus_per_worker=-1"),
        ({"workers_per_trial": 1.5}, "search.workers_per_trial=1.5"),
        ({"seed": "x"}, "search.seed='x'"),
        ({"wandb_project": ""}, "search.wandb_project=''"),
    ],
)
def test_search_section_problems(search, needle):
    text = "\n".join(problems_of({**minimal(), "search": search}))
    assert needle in text, text


def test_mode_is_inferred_per_metric_and_mixed_tasks_need_an_explicit_mode():
    spec = load_spec({**minimal(), "search": {"objective": "multi"}})
    assert spec.search.metric == ["val_metric", "relative_cost"] and spec.search.mode == ["max", "min"]
    assert spec.search.primary_metric == "val_metric" and spec.search.primary_mode == "max"
    mixed = {"space": {"task": {"choices": ["sst2", "wikitext"]}}}
    assert "give search.mode explicitly" in "\n".join(problems_of(mixed))
    assert load_spec({**mixed, "search": {"mode": "max"}}).search.mode == "max"


def test_rungs_on_the_dev_loss_need_a_task_that_has_one():
    assert load_spec({**minimal(), "search": {"rung_metric": "val_loss"}}).search.rungs_judge == ("val_loss", "min")
    assert load_spec(minimal()).search.rungs_judge == ("val_metric", "max")
    squad = {"space": {"task": {"choices": ["sst2", "squad"]}}, "search": {"rung_metric": "val_loss"}}
    assert "search.rung_metric: val_loss, but task 'squad' reports no dev loss" in "\n".join(problems_of(squad))
    assert "rung_metric" in "\n".join(problems_of({**minimal(), "search": {"rung_metric": "val_acc"}}))


def test_normalisation_paths_yaml_floats_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "s.yaml"
    # `1e-5` without a dot is a string in YAML 1.1: float keys read it as a number anyway
    (tmp_path / "data").mkdir()
    path.write_text(
        "storage: out\nfixed: {data_root: data, lr: 1e-4}\n"
        "space: {lambda_head: {low: 1e-5, high: 1e-3, log: true}, window: {low: 3, high: 6}}\n"
    )
    spec = load_spec(path)
    assert spec.name == "s"
    assert spec.storage == str(tmp_path / "out")
    assert spec.fixed == {"data_root": str(tmp_path / "data"), "lr": 1e-4}
    lam, win = spec.space["lambda_head"], spec.space["window"]
    assert (lam.kind, lam.low, lam.high, lam.log) == ("float", 1e-5, 1e-3, True)
    assert (win.kind, win.low, win.high) == ("int", 3, 6)
    assert spec.search.seed == 0 and spec.search.scheduler == "asha" and spec.search.mode == "max"
    assert load_spec({"storage": "s3://bucket/runs"}).storage == "s3://bucket/runs"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_to_dict_round_trips(path):
    spec = load_spec(path)
    again = load_spec(spec.to_dict())
    again.source = spec.source
    assert again == spec


# -- the define-by-run function -------------------------------------------------------------------------


def test_conditional_keys_only_when_their_condition_holds():
    spec = load_spec(SPACES / "union.yaml")
    fn = space_fn(spec)
    base = {k: d.corners()[0] for k, d in spec.space.items() if not d.when}
    off = fn(optuna.trial.FixedTrial({**base, "pld": False}))
    assert off["pld"] is False and not PLD_KEYS & set(off)
    on = fn(optuna.trial.FixedTrial({**base, "pld": True, "theta_bar": 0.7, "gamma": 0.005, "pld_phase": "both"}))
    assert on["pld"] is True and PLD_KEYS <= set(on)
    assert (on["theta_bar"], on["gamma"], on["pld_phase"]) == (0.7, 0.005, "both")
    # fixed values come back with the sampled ones
    assert {k: on[k] for k in spec.fixed} == spec.fixed
    # and through a real study: the PLD keys appear exactly in the trials with pld on
    study = study_for(spec, optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        params = fn(trial)
        assert (PLD_KEYS <= set(params)) == params["pld"]
        assert (PLD_KEYS & set(trial.params) != set()) == params["pld"]
        seen.add(params["pld"])
        study.tell(trial, [0.5, 0.5])
    assert seen == {True, False}


def test_condition_on_a_fixed_key_and_chained_conditions():
    spec = load_spec(
        {
            "fixed": {"pld": True},
            "space": {
                "theta_bar": {"low": 0.5, "high": 0.9, "when": {"pld": True}},
                "ticket_mode": {"choices": ["rewind", "continue"]},
                "ticket_lr": {"low": 1e-5, "high": 1e-4, "when": {"ticket_mode": "continue"}},
                "eps": {"choices": [0.1, 0.2], "when": {"ticket_mode": "continue"}},
                "window": {"choices": [3, 5], "when": {"eps": 0.2}},
            },
        }
    )
    fn = space_fn(spec)
    always = fn(optuna.trial.FixedTrial({"theta_bar": 0.6, "ticket_mode": "rewind"}))
    assert set(always) == {"theta_bar", "ticket_mode", "pld"}
    chained = fn(
        optuna.trial.FixedTrial(
            {"theta_bar": 0.6, "ticket_mode": "continue", "ticket_lr": 5e-5, "eps": 0.2, "window": 3}
        )
    )
    assert chained["window"] == 3 and chained["ticket_lr"] == 5e-5
    assert "window" not in fn(
        optuna.trial.FixedTrial({"theta_bar": 0.6, "ticket_mode": "continue", "ticket_lr": 5e-5, "eps": 0.1})
    )


def test_sampled_values_lie_in_their_domains():
    spec = load_spec(SPACES / "union.yaml")
    study = study_for(spec)  # seeded TPE: past its startup trials it samples from its model
    for i in range(30):
        trial = study.ask()
        params = space_fn(spec)(trial)
        for key, d in spec.space.items():
            if key in params:
                assert d.contains(params[key]), (key, params[key], d)
                if d.kind == "int":
                    assert isinstance(params[key], int)
        study.tell(trial, [params["head_ratio"] + params["ffn_ratio"], params["lr"] * 1e3])


def _run(spec: SearchSpec, n: int) -> list[dict]:
    study = study_for(spec)
    fn = space_fn(spec)
    out = []
    for _ in range(n):
        trial = study.ask()
        params = fn(trial)
        out.append(params)
        values = [params.get("head_ratio", 0.3) - params.get("eps", 0.1), params.get("ffn_ratio", 0.4)]
        study.tell(trial, values[: len(spec.search.metrics)])
    return out


@pytest.mark.parametrize("name", ["earlybert", "union"])
def test_seeded_tpe_is_deterministic(name):
    spec = load_spec(SPACES / f"{name}.yaml")
    first, second = _run(spec, 14), _run(spec, 14)  # past TPE's 10 random start-up trials
    assert first == second
    other = copy.deepcopy(spec)
    other.search.seed = spec.search.seed + 1
    assert _run(other, 3) != first[:3]


def test_space_fn_pickles():
    spec = load_spec(SPACES / "union.yaml")
    fn = pickle.loads(pickle.dumps(space_fn(spec)))
    assert fn.spec == spec
    assert fn(optuna.trial.FixedTrial({k: d.corners()[0] for k, d in spec.space.items()}))["pld"] is False


def test_flow_config_from_a_sample():
    spec = load_spec(SPACES / "demo.yaml")
    params = space_fn(spec)(optuna.trial.FixedTrial({k: d.low for k, d in spec.space.items()}))
    cfg = spec.flow_config(params)
    assert isinstance(cfg, FlowConfig) and cfg.head_ratio == spec.space["head_ratio"].low
    assert cfg.max_train_samples == spec.fixed["max_train_samples"]


# ------------------------------------------------------------------------------------------ gpus_per_trial


@pytest.mark.parametrize(
    "search,expect",
    [
        ({"gpus_per_trial": 0.5}, (0.5, 1)),
        ({"gpus_per_trial": 0}, (0, 1)),
        ({}, (None, 1)),
        ({"gpus_per_trial": 2}, (2, 2)),  # two GPUs: two DDP workers
        ({"gpus_per_trial": 4, "workers_per_trial": 4}, (4, 4)),
    ],
)
def test_gpus_per_trial_is_read(search, expect):
    from tickettune.spaces.spec import load_spec

    s = load_spec({"name": "g", "search": search, "fixed": {"task": "sst2"}}).search
    assert (s.gpus_per_trial, s.workers_per_trial) == expect


@pytest.mark.parametrize(
    "value,workers,msg",
    [
        ("half", None, "search.gpus_per_trial='half': must be a number >= 0"),
        (-1, None, "search.gpus_per_trial=-1: must be a number >= 0"),
        (True, None, "search.gpus_per_trial=True"),
        (1.5, None, "search.gpus_per_trial=1.5: more than one GPU per trial must be a whole number"),
        (2, 1, "search.gpus_per_trial=2 with workers_per_trial=1"),
        (0.5, 2, "search.gpus_per_trial=0.5 with workers_per_trial=2: each DDP worker needs a whole GPU"),
        (2, 3, "search.gpus_per_trial=2 with workers_per_trial=3"),
    ],
)
def test_bad_gpus_per_trial_named(value, workers, msg):
    from tickettune.spaces.spec import SpecError, load_spec

    search = {"gpus_per_trial": value, **({"workers_per_trial": workers} if workers else {})}
    with pytest.raises(SpecError) as e:
        load_spec({"name": "g", "search": search, "fixed": {"task": "sst2"}})
    assert msg in str(e.value)
