"""A trial that runs again (a retry after a lost node, a resumed search) opens the same W&B run: id = the trial id,
resume="allow" (Ray's own callback opens it with resume=False). The logging actor is not started here: what
`wandb.init` would get is captured where Ray hands it to the actor. The chaos run (test_chaos_search.py) counts
the offline run folders of retried trials on a real cluster."""

from __future__ import annotations


class Trial:
    def __init__(self, trial_id: str):
        self.trial_id, self.config = trial_id, {"head_ratio": 0.3}

    def __str__(self) -> str:
        return f"trial_{self.trial_id}"


def test_every_attempt_of_a_trial_opens_its_one_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    from tickettune.searcher.tracking import wandb_callback

    cb = wandb_callback("p", group="g", experiment_dir=tmp_path)
    opened = []
    monkeypatch.setattr(cb, "_start_logging_actor", lambda trial, exclude, **kw: opened.append(kw))
    trial = Trial("ab12c_00001")
    cb.log_trial_start(trial)
    cb.log_trial_start(trial)  # the retry
    assert [(k["id"], k["resume"], k["group"], k["mode"]) for k in opened] == [
        ("ab12c_00001", "allow", "g", "offline")
    ] * 2


def test_a_resume_setting_given_is_kept(tmp_path, monkeypatch):
    from tickettune.searcher.wandb_callback import WandbCallback

    assert WandbCallback(project="p", resume="never").kwargs["resume"] == "never"


def test_results_are_logged_at_wandbs_own_step():
    """Ray logs at step=training_iteration, which a restored trial counts again from its checkpoint's: W&B drops
    those results. Without the key Ray passes step=None (W&B's counter); Tune's count stays as a metric."""
    from tickettune.searcher.wandb_callback import TUNE_ITERATION, _LoggingActor

    actor = _LoggingActor.__new__(_LoggingActor)  # what _handle_result reads; no W&B run, no actor
    actor._exclude, actor._to_config = {"done"}, {"trial_id"}
    log, config = actor._handle_result({"training_iteration": 6, "step": 70, "loss": 0.6, "trial_id": "t", "done": 0})
    assert log == {TUNE_ITERATION: 6, "step": 70, "loss": 0.6} and config == {"trial_id": "t"}
    assert log.get("training_iteration") is None  # Ray's run(): wandb.log(log, step=log.get(TRAINING_ITERATION))
