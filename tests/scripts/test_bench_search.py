"""The search-against-search benchmark (scripts/bench/search_vs_search.py): its generated tickettune config
passes the spec's validation, the scoring follows the issue's definitions, and (slow) the smoke run."""

import json
import math

import pytest
from benchkit.search_compare import compare, front

from bench import search_vs_search as bench
from tickettune.spaces import load_spec


@pytest.mark.parametrize("smoke", [False, True])
@pytest.mark.parametrize("task", ["cola", "sst2"])
def test_generated_config_is_a_valid_search(task, smoke, tmp_path):
    args = bench.parse_args(["--tasks", task] + (["--smoke"] if smoke else []))
    spec = load_spec(bench.tickettune_config(args, task, 0, str(tmp_path)))
    s = spec.search
    assert s.multi and s.metrics == ["val_metric", "relative_time"] and s.baseline and s.max_concurrent == 1
    assert s.total_trials == args.trials + 1 and s.enqueue[0]["ticket_mode"] == "rewind"
    assert {
        "lr",
        "warmup_ratio",
        "ticket_mode",
        "ticket_lr",
        "head_ratio",
        "ffn_ratio",
        "eps",
        "embeddings",
        "dropout",
    } == set(spec.space)
    assert spec.fixed["budget_epochs"] == (1.0 if smoke or task == "sst2" else 3.0)
    assert spec.fixed["max_train_samples"] == (128 if smoke else {"cola": None, "sst2": 20000}[task])


def test_concurrency_two_splits_the_cores(tmp_path):
    args = bench.parse_args(["--tasks", "cola", "--concurrency", "2"])
    s = load_spec(bench.tickettune_config(args, "cola", 0, str(tmp_path))).search
    assert (s.max_concurrent, s.cpus_per_worker) == (2, 1)
    with pytest.raises(SystemExit):
        bench.parse_args(["--concurrency", "2", "--threads", "3"])


def _tt(trial_id, metric, seconds, baseline=False):
    return {"trial_id": trial_id, "metric": metric, "train_seconds": seconds, "baseline": baseline, "params": {}}


def test_compare_follows_the_issue_definitions():
    hf = {
        "seconds": 1000.0,
        "trials": [
            {"number": 0, "metric": 0.90, "train_seconds": 100.0},
            {"number": 1, "metric": 0.88, "train_seconds": 80.0},
            {"number": 2, "metric": math.nan, "train_seconds": 90.0},
        ],
    }
    tt = {
        "seconds": 700.0,
        "trials": [
            _tt("base", 0.91, 95.0, True),
            _tt("a", 0.897, 60.0),
            _tt("b", 0.893, 50.0),
            _tt("c", 0.80, 30.0),
            _tt("d", 0.899, 70.0),
        ],
    }
    c = compare(hf, tt, tolerance_pt=0.5)
    assert c["wall_ratio"] == pytest.approx(0.7)
    assert c["best_diff_pt"] == pytest.approx(-0.1)  # best ticket d, not the baseline
    assert c["fast_trial"]["trial_id"] == "a"  # b is 0.7 pt under, c far under
    assert c["fast_time_ratio"] == pytest.approx(60.0 / 90.0)  # mean of HF's finished trials
    assert c["fast_diff_pt"] == pytest.approx(-0.3)
    assert c["hf_front"] == ["0", "1"] and c["tickettune_front"] == ["base", "d", "a", "b", "c"]
    assert c["hf_failed"] == 1
    none = compare(hf, {"seconds": 1.0, "trials": [_tt("c", 0.80, 30.0)]}, 0.5)
    assert none["fast_trial"] is None and none["fast_time_ratio"] is None
    assert [t["trial_id"] for t in front(tt["trials"])] == ["base", "d", "a", "b", "c"]


def test_headline_is_one_entry_per_task():
    c = {
        "wall_ratio": 0.7,
        "best_diff_pt": -0.1,
        "fast_time_ratio": 0.6,
        "fast_diff_pt": -0.3,
        "fast_trial": {"trial_id": "a"},
    }
    h = bench.headline({"cola": {"runs": [{"comparison": c}, {"comparison": {**c, "wall_ratio": 0.9}}]}})
    assert h == [
        {
            "task": "cola",
            "wall_ratio": pytest.approx(0.8),
            "best_diff_pt": -0.1,
            "fast_time_ratio": 0.6,
            "fast_diff_pt": -0.3,
            "seeds": 2,
            "fast_found": 2,
        }
    ]


@pytest.mark.slow
def test_smoke_run_writes_json_and_png(tmp_path):
    out = bench.main(["--smoke", "--tasks", "cola", "--json", str(tmp_path / "s.json"), "--plot-dir", str(tmp_path)])
    saved = json.loads((tmp_path / "s.json").read_text())
    assert [h["task"] for h in saved["headline"]] == ["cola"]
    run = out["tasks"]["cola"]["runs"][0]
    assert len(run["hf"]["trials"]) == 2 and len(run["tickettune"]["trials"]) == 3
    assert (tmp_path / "search_vs_search_cola.png").read_bytes()[:4] == b"\x89PNG"
    assert saved["machine"]["cpu"] is not None


def test_a_second_run_into_the_same_json_keeps_the_first_runs_tasks(tmp_path):
    path = tmp_path / "s.json"
    c = {"wall_ratio": 0.7, "best_diff_pt": -0.1, "fast_time_ratio": 0.6, "fast_diff_pt": -0.3, "fast_trial": None}
    cola = {"runs": [{"seed": 0, "comparison": c}]}
    path.write_text(json.dumps({"tasks": {"cola": cola, "sst2": {"runs": []}}}))
    bench.finish({"tasks": {"sst2": {"runs": []}}, "headline": []}, path)
    saved = json.loads(path.read_text())
    assert set(saved["tasks"]) == {"cola", "sst2"} and saved["tasks"]["cola"] == cola
    assert [h["task"] for h in saved["headline"]] == ["cola", "sst2"] and saved["headline"][0]["wall_ratio"] == 0.7
