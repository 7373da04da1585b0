"""Exporting tickets from an experiment folder (no Ray): best, Pareto front, atomic replace, reload."""

import json
import math
import subprocess
import sys

import pytest
from search_fakes import FOUR, make_experiment

from tickettune.searcher.export import dominates, export_best, load_trials


@pytest.fixture
def experiment(tmp_path):
    return make_experiment(tmp_path, FOUR)


def test_load_trials_reads_state_reports_and_tickets(experiment):
    trials = {t.trial_id: t for t in load_trials(experiment)}
    assert list(trials) == ["a", "b", "c", "d", "e"]
    assert trials["b"].finished and trials["b"].metric("val_metric") == 0.85
    assert trials["a"].last["early_bird_step"] == 15 and trials["d"].converged is False
    assert trials["e"].status == "ERROR" and trials["e"].ticket_dir is None
    assert math.isnan(trials["e"].metric("val_metric"))
    assert [r["step"] for r in trials["a"].history if r["phase"] == "search"] == [5, 10, 15]


def test_best_single_objective(experiment, tmp_path):
    out = tmp_path / "best"
    [entry] = export_best(experiment, out)
    assert entry["trial_id"] == "b"
    assert (out / "ticket.json").is_file() and (out / "model.safetensors").is_file()
    meta = json.loads((out / "export.json").read_text())
    assert meta["metric"] == "val_metric" and meta["mode"] == "max" and meta["trial_id"] == "b"
    # by cost instead (min): the cheapest ticket
    [entry] = export_best(experiment, tmp_path / "cheap", metric="relative_cost")
    assert entry["trial_id"] == "c"


def test_export_replaces_atomically_and_leaves_no_temp(experiment, tmp_path):
    out = tmp_path / "best"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    export_best(experiment, out)
    assert not (out / "stale.txt").exists() and (out / "ticket.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_pareto_front(experiment, tmp_path):
    out = tmp_path / "front"
    entries = export_best(experiment, out, pareto=True)
    ids = sorted(e["trial_id"] for e in entries)
    assert ids == ["a", "b", "c"]  # d is dominated by a (higher val, lower cost); e has no ticket
    for i in ids:
        assert (out / i / "ticket.json").is_file()
    meta = json.loads((out / "export.json").read_text())
    assert meta["metrics"] == ["val_metric", "relative_cost"] and meta["modes"] == ["max", "min"]


def test_front_and_best_helpers():
    assert dominates([0, 0], [1, 0]) and not dominates([0, 1], [1, 0]) and not dominates([1, 1], [1, 1])


def test_nothing_to_export(tmp_path):
    exp = make_experiment(tmp_path, [{"id": "x", "config": {"eps": 0.1}, "val": None, "status": "ERROR"}])
    with pytest.raises(LookupError, match="no trial"):
        export_best(exp, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_exported_ticket_reloads_in_a_fresh_process(experiment, tmp_path):
    out = tmp_path / "best"
    export_best(experiment, out)
    code = (
        "import sys, torch; from tickettune.trainables.ticket.format import load_ticket; "
        "m, tok, info = load_ticket(sys.argv[1]); "
        "ids = tok('a fine film', return_tensors='pt'); "
        "print(info['val_metric'], tuple(m(**ids).logits.shape))"
    )
    r = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "0.85" and "(1, 2)" in r.stdout


def test_export_one_chosen_trial(experiment, tmp_path):
    out = tmp_path / "chosen"
    [entry] = export_best(experiment, out, trial="trial_c")  # as Tune names the folder, or bare
    assert entry["trial_id"] == "c" and json.loads((out / "export.json").read_text())["trial_id"] == "c"
    assert (out / "ticket.json").is_file()
    with pytest.raises(ValueError, match=r"--trial 'zz': no such trial .*\['a', 'b', 'c', 'd', 'e'\]"):
        export_best(experiment, tmp_path / "x", trial="zz")
    with pytest.raises(ValueError, match="'e': nothing to export: its status is ERROR"):
        export_best(experiment, tmp_path / "x", trial="e")
    with pytest.raises(ValueError, match="give one of them"):
        export_best(experiment, tmp_path / "x", trial="a", pareto=True)
    assert not (tmp_path / "x").exists()


def test_cli_export_trial(experiment, tmp_path):
    from tickettune.searcher.cli import main

    assert main(["export", str(experiment), "--trial", "a", "--out", str(tmp_path / "a")]) == 0
    assert json.loads((tmp_path / "a" / "export.json").read_text())["trial_id"] == "a"
    assert main(["export", str(experiment), "--trial", "nope", "--out", str(tmp_path / "n")]) == 2
