"""benchkit/chaos_measure.py on experiment folders written here the way Tune and W&B write them: attempts cut by
process and by reports that stop moving forward, what counts as restored, as a search rerun, as a finished trial
rerun, and W&B run folders per trial. The real thing, on a two-node cluster, is test_chaos_search.py."""

from __future__ import annotations

import json
from pathlib import Path

from benchkit.chaos_measure import attempts, measure, trial_faults, wandb_runs


def rep(pid: int, phase: str, step: int, **kw) -> dict:
    r = {"pid": pid, "phase": phase, "step": step, "val_metric": 0.5, **kw}
    if phase == "ticket" and "loss" not in kw and not kw.get("checkpoint"):
        r["loss"] = 0.6
    r.pop("checkpoint", None)
    return r


SEARCH = [rep(1, "search", s) for s in (5, 10, 15, 20)] + [rep(1, "ticket", 20, checkpoint=True)]
TICKET = [rep(1, "ticket", 70), rep(1, "ticket", 120)]
DONE = [rep(1, "done", 120, flow_done=True)]


def test_a_trial_run_through_once_is_one_attempt():
    f = trial_faults(SEARCH + TICKET + DONE)
    assert f["attempts"] == 1 and not (f["restored"] or f["search_rerun"] or f["finished_rerun"])
    assert f["spans"] == [{"pid": 1, "from": [0, 5.0], "to": [2, 120.0], "reports": 8}]


def test_restored_from_the_search_checkpoint_in_a_new_process():
    again = [rep(2, "ticket", 70), rep(2, "ticket", 120), rep(2, "done", 120, flow_done=True)]
    f = trial_faults(SEARCH + TICKET[:1] + again)
    assert f["attempts"] == 2 and f["restored"] and not f["search_rerun"] and not f["from_scratch"]


def test_a_worker_group_restarted_in_the_same_process_is_seen_by_its_steps():
    """Ray Train restarts the workers inside the same Tune trial process: the pid stays, the steps go back."""
    again = [rep(1, "ticket", 70), rep(1, "done", 120, flow_done=True)]
    parts = attempts(SEARCH + TICKET + again)
    assert [len(p) for p in parts] == [7, 2]
    assert trial_faults(SEARCH + TICKET + again)["restored"]


def test_a_completed_search_run_again_is_counted():
    f = trial_faults(SEARCH + TICKET[:1] + [rep(2, "search", 5), rep(2, "search", 10)])
    assert f["search_rerun"] and not f["restored"]


def test_interrupted_inside_the_search_restarts_from_scratch_and_is_no_rerun():
    f = trial_faults(SEARCH[:2] + [rep(2, "search", 5)] + SEARCH[1:])
    assert f["from_scratch"] and not f["search_rerun"] and not f["restored"]


def test_a_finished_trial_that_reports_again_is_a_rerun():
    assert trial_faults(SEARCH + TICKET + DONE + [rep(3, "search", 5)])["finished_rerun"]


def write_experiment(exp: Path, trials: dict[str, tuple[str, int, list[dict]]], wandb: list[str]) -> None:
    exp.mkdir(parents=True)
    (exp / "tickettune_search.json").write_text(json.dumps({"spec": {"search": {"num_samples": len(trials)}}}))
    rows = [
        [json.dumps({"trial_id": t, "status": st, "config": {}}), json.dumps({"num_failures": n})]
        for t, (st, n, _) in trials.items()
    ]
    (exp / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps({"trial_data": rows}))
    for t, (_, _, history) in trials.items():
        d = exp / f"trial_{t}"
        d.mkdir()
        (d / "result.json").write_text("".join(json.dumps(r) + "\n" for r in history))
    for name in wandb:
        run = exp / "wandb" / name
        (run / "files").mkdir(parents=True)
    (exp / "best").mkdir()
    (exp / "best" / "export.json").write_text(json.dumps({"trial_id": "a", "metrics": {"val_metric": 0.5}}))


def test_measure_one_fault(tmp_path):
    exp = tmp_path / "exp"
    restored = SEARCH + TICKET[:1] + [rep(2, "ticket", 70), rep(2, "done", 120, flow_done=True)]
    write_experiment(
        exp,
        {"a": ("TERMINATED", 0, SEARCH + TICKET + DONE), "b": ("TERMINATED", 1, restored)},
        [
            "offline-run-20260101_000001-a",
            "offline-run-20260101_000002-b",
            "offline-run-20260101_000100-b",  # b's retry: the same run id
            "offline-run-20260101_000200-x9y8z7",  # the export run
        ],
    )
    m = measure(exp, "node", victims={"b"})
    assert {k: m[k] for k in ("fault", "planned", "finished", "interrupted", "restored")} == {
        "fault": "node",
        "planned": 2,
        "finished": 2,
        "interrupted": 1,
        "restored": 1,
    }
    assert m["search_phases_rerun"] == 0 and m["finished_rerun"] == 0 and m["exported"]
    assert m["max_wandb_runs_per_trial"] == 1 and m["wandb"]["max_folders_per_trial"] == 2
    assert m["wandb"]["runs_of_no_trial"] == ["offline-run-20260101_000200-x9y8z7"]
    assert m["trials"]["b"]["num_failures"] == 1 and m["best"]["trial_id"] == "a"


def test_a_run_named_otherwise_is_tied_to_its_trial_by_its_config(tmp_path):
    exp = tmp_path / "exp"
    run = exp / "wandb" / "offline-run-20260101_000001-zz11"
    (run / "files").mkdir(parents=True)
    (run / "files" / "config.yaml").write_text("_wandb:\n  value: {}\ntrial_id:\n  value: b\n")
    (exp / "wandb" / "offline-run-20260101_000002-b" / "files").mkdir(parents=True)
    wb = wandb_runs(exp, {"a", "b"})
    assert wb["max_runs_per_trial"] == 2 and wb["per_trial"] == {"b": {"zz11": 1, "b": 1}}


def test_a_finished_trial_that_only_repeats_its_last_report_is_no_rerun():
    """Tune ran a finished trial again and it sent its last report again (trial.py's FINISHED.json)."""
    f = trial_faults(SEARCH + TICKET + DONE + [rep(3, "done", 120, flow_done=True, replayed=True)])
    assert f["replayed"] and not f["finished_rerun"] and f["attempts"] == 1
