"""Resource planning (no Ray): what a trial asks for, and how many run at once, never deadlocking."""

import pytest

from tickettune.searcher.ray_reporters import clean_metrics
from tickettune.searcher.resources import DRIVER_CPU, ResourceError, ResourcePlan, plan_resources

TWO = {"CPU": 2.0}


def total(plan: ResourcePlan) -> float:
    per_trial = plan.trial_cpus + (plan.num_workers * plan.cpus_per_worker if plan.executor == "train" else 0)
    return per_trial * plan.max_concurrent_trials


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"max_concurrent": 1},
        {"workers_per_trial": 2},
        {"executor": "train"},
        {"executor": "train", "max_concurrent": 1},
        {"cpus_per_worker": 0.5},
        {"workers_per_trial": 2, "cpus_per_worker": 0.25},
    ],
)
def test_never_more_than_the_cluster(kw):
    plan = plan_resources(TWO, **kw)
    assert total(plan) <= 2.0 + 1e-9
    assert plan.max_concurrent_trials >= 1 and plan.torch_threads >= 1


def test_two_cpus_one_worker_defaults_to_inline_two_at_once():
    plan = plan_resources(TWO)
    assert plan.executor == "inline" and plan.max_concurrent_trials == 2 and plan.trial_resources == {"CPU": 1.0}


def test_train_executor_overlaps_two_trials_on_two_cpus():
    plan = plan_resources(TWO, workers_per_trial=2)
    assert plan.executor == "train" and plan.backend == "gloo"
    assert plan.trial_resources == {"CPU": DRIVER_CPU} and plan.max_concurrent_trials == 2
    assert plan.worker_resources == {"CPU": pytest.approx(0.495)}


def test_one_trial_at_a_time_gets_every_cpu():
    plan = plan_resources(TWO, executor="train", max_concurrent=1)
    assert plan.max_concurrent_trials == 1 and plan.torch_threads == 2
    assert plan.cpus_per_worker + plan.trial_cpus == pytest.approx(2.0)


def test_gpus_one_per_worker_nccl():
    plan = plan_resources({"CPU": 16.0, "GPU": 4.0}, workers_per_trial=2)
    assert plan.use_gpu and plan.backend == "nccl" and plan.worker_resources["GPU"] == 1.0
    assert plan.max_concurrent_trials == 2  # 4 GPUs / 2 per trial


def test_roundtrip():
    plan = plan_resources(TWO, workers_per_trial=2)
    assert ResourcePlan.from_dict(plan.to_dict()) == plan


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"workers_per_trial": 2, "cpus_per_worker": 1.5}, "needs 3.01 CPUs"),
        ({"executor": "inline", "workers_per_trial": 2}, "executor='train'"),
        ({"executor": "fast"}, "executor="),
        ({"workers_per_trial": 3, "gpus_per_trial": 3}, "GPU"),
    ],
)
def test_impossible_plans_fail_before_anything_starts(kw, msg):
    with pytest.raises(ResourceError, match=msg):
        plan_resources(TWO, **kw)


def test_reports_never_carry_tunes_done_key(tmp_path):
    (tmp_path / "ticket.json").write_text("{}")
    out = clean_metrics({"done": True, "val_metric": 0.5}, ticket_dir=str(tmp_path))
    assert "done" not in out and out["flow_done"] is True and out["ticket_dir"] == str(tmp_path)
    assert "ticket_dir" not in clean_metrics({"done": False}, ticket_dir=str(tmp_path))


def test_an_existing_experiment_is_refused_or_overwritten_never_a_foreign_folder(tmp_path):
    from tickettune.searcher.search import STATE_FILE, ExperimentExists, _clear

    exp = tmp_path / "exp"
    _clear(exp, overwrite=False)  # nothing there: fine
    exp.mkdir()
    (exp / STATE_FILE).write_text("{}")
    with pytest.raises(ExperimentExists, match="resume"):
        _clear(exp, overwrite=False)
    _clear(exp, overwrite=True)
    assert not exp.exists()
    exp.mkdir()
    (exp / "notes.txt").write_text("mine")
    with pytest.raises(ExperimentExists, match="not a tickettune experiment"):
        _clear(exp, overwrite=True)
    assert (exp / "notes.txt").exists()


def test_asha_judges_the_trials_steps_and_trials_evaluate_at_its_rungs():
    from ray.tune.schedulers import ASHAScheduler

    from tickettune.searcher.scheduling import make_scheduler, with_rung_evaluations
    from tickettune.spaces.spec import load_spec

    base = {
        "name": "x",
        "search": {"scheduler": "asha"},
        "fixed": {"task": "sst2", "search_max_steps": 100},
        "space": {"ticket_steps": {"low": 100, "high": 200}},
    }
    spec = with_rung_evaluations(load_spec(base))
    asha = make_scheduler(spec, "unused")  # the folder of its record (stops.py): written at the first rung
    # without a budget a trial runs at most search_max_steps + ticket_steps: the longest is max_t
    assert isinstance(asha, ASHAScheduler) and asha._time_attr == "eval_step" and asha._max_t == 300
    assert spec.fixed["eval_interval"] == 75 and [m for m, _ in asha._brackets[0]._rungs] == [300, 150, 75]
    budget = make_scheduler(load_spec({**base, "fixed": {"task": "sst2", "budget_steps": 400}, "space": {}}), "-")
    assert budget._max_t == 400  # with one, the dense run's steps: what a `continue` trial runs in all
    own = load_spec({**base, "fixed": {"task": "sst2", "eval_interval": 7}})
    assert with_rung_evaluations(own).fixed["eval_interval"] == 7  # the config's own value wins
    none = load_spec({**base, "search": {"scheduler": "none"}})
    assert make_scheduler(none, "unused") is None and "eval_interval" not in with_rung_evaluations(none).fixed


# ------------------------------------------------------------------------------------ GPUs shared by trials


def gpu_total(plan: ResourcePlan) -> float:
    return plan.num_workers * plan.gpus_per_worker * plan.max_concurrent_trials


@pytest.mark.parametrize(
    "cluster,kw",
    [
        ({"CPU": 2.0, "GPU": 1.0}, {"gpus_per_trial": 0.5}),
        ({"CPU": 2.0, "GPU": 2.0}, {}),
        ({"CPU": 16.0, "GPU": 1.0}, {"gpus_per_trial": 0.25}),
        ({"CPU": 16.0, "GPU": 4.0}, {"workers_per_trial": 2}),
        ({"CPU": 3.0, "GPU": 8.0}, {"gpus_per_trial": 1}),
        ({"CPU": 16.0, "GPU": 2.0}, {"executor": "train"}),
        ({"CPU": 16.0, "GPU": 4.0}, {"workers_per_trial": 4, "gpus_per_trial": 4, "max_concurrent": 3}),
    ],
)
def test_gpu_plans_never_ask_for_more_than_the_cluster(cluster, kw):
    plan = plan_resources(cluster, **kw)
    assert total(plan) <= cluster["CPU"] + 1e-9 and gpu_total(plan) <= cluster["GPU"] + 1e-9
    assert plan.max_concurrent_trials >= 1 and plan.use_gpu


def test_half_a_gpu_per_trial_puts_two_trials_on_one_gpu():
    plan = plan_resources({"CPU": 2.0, "GPU": 1.0}, gpus_per_trial=0.5)
    assert plan.executor == "inline" and plan.max_concurrent_trials == 2
    assert plan.trial_resources == {"CPU": 1.0, "GPU": 0.5}


def test_gpu_trials_share_the_cpus_of_the_node():
    plan = plan_resources({"CPU": 16.0, "GPU": 1.0}, gpus_per_trial=0.5)
    assert plan.max_concurrent_trials == 2 and plan.trial_resources == {"CPU": 8.0, "GPU": 0.5}
    assert plan.torch_threads == 8
    one = plan_resources({"CPU": 16.0, "GPU": 1.0})  # default: the whole GPU, every CPU
    assert one.max_concurrent_trials == 1 and one.trial_resources == {"CPU": 16.0, "GPU": 1.0}
    # the CPUs still bound the concurrency: 8 GPUs, 3 CPUs -> 3 trials of one CPU
    few = plan_resources({"CPU": 3.0, "GPU": 8.0})
    assert few.max_concurrent_trials == 3 and few.trial_resources == {"CPU": 1.0, "GPU": 1.0}
    # a computed share is rounded down to Ray's 1e-4: three trials never ask for more than the 20 CPUs
    third = plan_resources({"CPU": 20.0, "GPU": 3.0})
    assert third.max_concurrent_trials == 3 and third.cpus_per_worker == 6.6666
    assert 3 * third.cpus_per_worker <= 20.0


def test_several_gpus_per_trial_one_per_ddp_worker():
    plan = plan_resources({"CPU": 16.0, "GPU": 4.0}, workers_per_trial=2, gpus_per_trial=2)
    assert plan.executor == "train" and plan.backend == "nccl" and plan.worker_resources["GPU"] == 1.0
    assert plan.max_concurrent_trials == 2 and plan.worker_resources["CPU"] == pytest.approx(3.995)


def test_no_gpus_asked_on_a_gpu_cluster_runs_on_cpus():
    plan = plan_resources({"CPU": 4.0, "GPU": 2.0}, gpus_per_trial=0)
    assert not plan.use_gpu and plan.backend == "gloo" and plan.trial_resources == {"CPU": 1.0}


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"gpus_per_trial": 2}, r"gpus_per_trial=2 with workers_per_trial=1.*workers_per_trial: 2"),
        ({"gpus_per_trial": 0.5, "workers_per_trial": 2}, r"gpus_per_trial=0.5 with workers_per_trial=2.*whole GPU"),
        ({"gpus_per_trial": -1}, r"gpus_per_trial=-1 must be >= 0"),
        ({"gpus_per_trial": 3, "workers_per_trial": 3}, r"need 3 GPUs; the cluster has 2"),
        ({"gpus_per_trial": 0.5, "cpus_per_worker": 3}, r"needs 3 CPUs"),
    ],
)
def test_impossible_gpu_plans_name_the_value(kw, msg):
    with pytest.raises(ResourceError, match=msg):
        plan_resources({"CPU": 2.0, "GPU": 2.0}, **kw)
