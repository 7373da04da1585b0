"""scripts/bench/qa_parity.py: its --smoke run writes every arm and the headline, and --merge keeps or refuses an
earlier file's runs by the settings they were measured with. (test_squad_parity.py holds the package's SQuAD code
to the benchmark's run_qa-style code.)"""

from __future__ import annotations

import json

import pytest

from bench import qa_parity as bench


def test_the_benchmark_smoke_run_writes_every_arm_and_the_headline(tmp_path):
    out = tmp_path / "qa.json"
    res = bench.main(["--smoke", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["headline"] == res["headline"]
    assert set(saved["runs"]) == {"hf", "dense", "earlybert"}
    for arm, runs in saved["runs"].items():
        assert len(runs) == 1 and runs[0]["steps"] == 2 and runs[0]["train_seconds"] > 0, arm
        assert 0 <= runs[0]["exact_match"] <= 100 and 0 <= runs[0]["f1"] <= 100, arm
    h = saved["headline"]
    d = saved["summary"]["dense"]
    assert h["f1_diff"] == pytest.approx(d["mean_f1"] - saved["summary"]["hf"]["mean_f1"])
    assert h["time_ratio"] == pytest.approx(d["mean_train_seconds"] / saved["summary"]["hf"]["mean_train_seconds"])
    assert h["earlybert"]["time_ratio"] > 0 and saved["machine"]["cpu"] is not None
    assert saved["tickettune_stride"] == saved["config"]["doc_stride"] == 32


def _earlier(path, args_list):
    """A results file as bench_qa_parity writes it: each arm's seed-0 run, measured with `args_list`'s settings."""
    args = bench.parse_args(args_list)
    runs = {a: [{"seed": 0, "f1": 1.0, "settings": bench.settings(args, a)}] for a in ("hf", "dense", "earlybert")}
    path.write_text(json.dumps({"config": {}, "machine": {}, "runs": runs}))


def test_merge_keeps_the_other_arms_and_seeds_and_redoes_the_asked_ones(tmp_path):
    path = tmp_path / "qa.json"
    _earlier(path, ["--json", str(path)])
    args = bench.parse_args(["--json", str(path), "--merge", "--arms", "earlybert", "--seeds", "1"])
    assert {a: [r["seed"] for r in rs] for a, rs in bench.kept_runs(args).items()} == {"hf": [0], "dense": [0]}
    args = bench.parse_args(["--json", str(path), "--merge", "--seeds", "1", "--first-seed", "1"])
    assert set(bench.kept_runs(args)) == {"hf", "dense", "earlybert"}
    assert bench.kept_runs(bench.parse_args(["--json", str(path), "--seeds", "1"])) == {}  # no --merge: a fresh file


def test_merge_refuses_runs_measured_with_other_settings_naming_the_key(tmp_path):
    path = tmp_path / "qa.json"
    _earlier(path, ["--json", str(path)])
    args = bench.parse_args(["--json", str(path), "--merge", "--first-seed", "1", "--search-max-steps", "40"])
    with pytest.raises(
        SystemExit, match="earlybert run of seed 0 has search_max_steps=None, this run search_max_steps=40"
    ):
        bench.kept_runs(args)
    # a run from before settings were recorded is judged by the file's config and machine
    config = {k: v for k, v in vars(args).items() if k != "json"}
    legacy = {"config": {**config, "search_max_steps": 40, "lr": 3e-5}, "machine": {"cpu": "x", "flags": []}}
    path.write_text(json.dumps({**legacy, "runs": {"hf": [{"seed": 0}]}}))
    with pytest.raises(SystemExit, match="hf run of seed 0 has lr=3e-05"):
        bench.kept_runs(args)
