"""What a search prints (searcher/console.py): quiet by default, `-v` for everything, no traceback at exit,
W&B runs one folder below the experiment. Fast: no Ray instance. The search itself, through the CLI:
test_search_console.py."""

import logging
import os

import pytest

from tickettune.searcher import console
from tickettune.searcher.cli import parser

SWITCHES = [*console.QUIET_DRIVER_ENV, *console.QUIET_WORKER_ENV]


@pytest.fixture
def clean_env(monkeypatch):
    for k in [*SWITCHES, *console.NO_AUTO_LOGGERS]:
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


@pytest.mark.parametrize("command", ["search", "resume"])
def test_verbose_flag_is_accepted_and_defaults_off(command):
    target = "spaces/demo.yaml" if command == "search" else "runs/x"
    assert parser().parse_args([command, target]).verbose is False
    assert parser().parse_args([command, target, "-v"]).verbose is True
    assert parser().parse_args([command, target, "--verbose"]).verbose is True


def test_quiet_by_default_sets_the_libraries_switches(clean_env):
    from tickettune.searcher.cli import _verbosity

    assert _verbosity(parser().parse_args(["search", "x.yaml"])) == console.QUIET
    assert {k: os.environ[k] for k in SWITCHES} == {**console.QUIET_DRIVER_ENV, **console.QUIET_WORKER_ENV}
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "error"
    assert os.environ["TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"] == "0"
    assert console.ray_logging_level(console.QUIET) == "WARNING"
    assert console.tune_verbosity(console.QUIET) == 1


def test_verbose_leaves_the_libraries_alone(clean_env):
    from tickettune.searcher.cli import _verbosity

    assert _verbosity(parser().parse_args(["search", "x.yaml", "-v"])) == console.VERBOSE
    assert not any(k in os.environ for k in SWITCHES)
    assert console.worker_env(console.VERBOSE) == {}
    assert console.ray_logging_level(console.VERBOSE) == "INFO"
    assert console.tune_verbosity(console.VERBOSE) == 2


def test_a_switch_the_user_set_wins(clean_env):
    clean_env.setenv("TRANSFORMERS_VERBOSITY", "info")
    console.prepare_driver(console.QUIET)
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "info"


def test_transformers_load_report_is_a_warning_that_error_verbosity_hides(clean_env, caplog, tmp_path):
    """The switch used for the trials, checked here: the LOAD REPORT of a fresh task head."""
    import transformers
    from transformers.utils import logging as hf_logging

    from tickettune.trainables.testing.random_models import write_random_model

    model = write_random_model("bert", tmp_path / "tiny-bert")
    before = hf_logging.get_verbosity()
    try:
        hf_logging.set_verbosity_warning()
        hf_logging.enable_propagation()
        with caplog.at_level(logging.WARNING, logger="transformers"):
            transformers.BertForSequenceClassification.from_pretrained(model, num_labels=2)
        assert "LOAD REPORT" in caplog.text
        caplog.clear()
        hf_logging.set_verbosity_error()
        transformers.BertForSequenceClassification.from_pretrained(model, num_labels=2)
        assert "LOAD REPORT" not in caplog.text
    finally:
        hf_logging.disable_propagation()
        hf_logging.set_verbosity(before)


def test_quiet_trial_logs_follow_the_env(clean_env):
    loggers = [logging.getLogger(n) for n in console.RAY_LOGGERS]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.INFO)
        console.quiet_trial_logs()  # TICKETTUNE_QUIET unset (a -v search): untouched
        assert all(lg.level == logging.INFO for lg in loggers)
        clean_env.setenv(console.QUIET_ENV, "1")
        console.quiet_trial_logs()
        assert all(lg.level == logging.WARNING for lg in loggers)
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def test_tune_writes_csv_and_json_but_no_tensorboard():
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    from ray.tune.utils.callback import _create_default_callbacks

    with console.scoped_env(console.NO_AUTO_LOGGERS):
        made = _create_default_callbacks(console.tune_loggers(), air_verbosity=1)
    kinds = {type(cb).__name__ for cb in made}
    assert {CSVLoggerCallback.__name__, JsonLoggerCallback.__name__} <= kinds
    assert not any("TBX" in k for k in kinds), kinds
    # outside the block Tune adds its TensorBoard logger (the one behind the TensorBoard hint)
    assert os.environ.get("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS") != "1"
    assert any("TBX" in type(cb).__name__ for cb in _create_default_callbacks([], air_verbosity=1))


def test_scoped_env_restores(clean_env):
    clean_env.setenv("TUNE_WARN_THRESHOLD_S", "3")
    with console.scoped_env({"TUNE_WARN_THRESHOLD_S": "9", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}):
        assert os.environ["TUNE_WARN_THRESHOLD_S"] == "9"
    assert os.environ["TUNE_WARN_THRESHOLD_S"] == "3" and "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS" not in os.environ


def test_wandb_runs_land_one_level_below_the_experiment(tmp_path, monkeypatch):
    from tickettune.searcher.tracking import prepare_wandb_env, wandb_dir

    monkeypatch.delenv("WANDB_DIR", raising=False)
    exp = tmp_path / "exp"
    assert prepare_wandb_env(exp) == wandb_dir(exp) == exp / "wandb"
    assert os.environ["WANDB_DIR"] == str(exp)  # W&B writes into <WANDB_DIR>/wandb


def test_wandb_callback_del_at_interpreter_exit(monkeypatch):
    """At interpreter exit a module's globals are cleared: Ray's __del__ then calls None.is_initialized()
    (the "Exception ignored in WandbLoggerCallback.__del__" a first search printed); ours does not."""
    import ray.air.integrations.wandb as ray_wandb

    from tickettune.searcher import wandb_callback

    ours, theirs = wandb_callback.WandbCallback(project="p"), ray_wandb.WandbLoggerCallback(project="p")
    monkeypatch.setattr(ray_wandb, "ray", None)
    with pytest.raises(AttributeError, match="is_initialized"):
        theirs.__del__()  # the cause, still there in Ray
    ours.__del__()
    ours._trial_logging_actors = {"a trial": "an actor"}  # even with an actor left over
    monkeypatch.setattr(wandb_callback, "ray", None)
    ours.__del__()
    monkeypatch.undo()  # both are collected after the test: with Ray's module whole again
