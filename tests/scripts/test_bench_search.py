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
    assert s.scheduler == "asha"  # trials behind stop at ASHA's rungs
    # the paper's ratios first, in `continue`: a rewind point is behind at every rung by its search phase
    assert s.total_trials == args.trials + 1 and s.enqueue[0]["ticket_mode"] == "continue"
    assert (s.enqueue[0]["head_ratio"], s.enqueue[0]["ffn_ratio"]) == (1 / 3, 0.4)
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


def test_a_counted_budget_gives_asha_its_max_t_and_hf_the_same_rungs(tmp_path):
    from benchkit.hf_search import rung_grace

    from tickettune.searcher.scheduling import asha_rungs, with_rung_evaluations

    args = bench.parse_args(["--tasks", "cola"])
    spec = load_spec(bench.tickettune_config(args, "cola", 0, str(tmp_path), budget_steps=804))
    assert spec.fixed["budget_steps"] == 804 and "budget_epochs" not in spec.fixed
    max_t, grace = asha_rungs(spec)
    assert (max_t, grace) == (804, rung_grace(804))  # HF + MedianPruner evaluates where ASHA judges
    assert with_rung_evaluations(spec).fixed["eval_interval"] == grace
    eighth = bench.parse_args(["--tasks", "cola", "--first-rung", "0.125", "--reduction-factor", "3"])
    spec8 = load_spec(bench.tickettune_config(eighth, "cola", 0, str(tmp_path), budget_steps=804))
    assert (spec8.search.first_rung, spec8.search.reduction_factor) == (0.125, 3)
    assert asha_rungs(spec8) == (804, 100) == (804, rung_grace(804, 0.125))
    none = bench.parse_args(["--tasks", "cola", "--scheduler", "none", "--no-hf-pruned", "--no-tax"])
    assert load_spec(bench.tickettune_config(none, "cola", 0, str(tmp_path))).search.scheduler == "none"
    assert not none.hf_pruned and not none.tax


def test_concurrency_two_splits_the_cores(tmp_path):
    args = bench.parse_args(["--tasks", "cola", "--concurrency", "2"])
    s = load_spec(bench.tickettune_config(args, "cola", 0, str(tmp_path))).search
    assert (s.max_concurrent, s.cpus_per_worker) == (2, 1)
    with pytest.raises(SystemExit):
        bench.parse_args(["--concurrency", "2", "--threads", "3"])


def _tt(trial_id, metric, seconds, baseline=False, stopped=False):
    return {
        "trial_id": trial_id,
        "metric": metric,
        "train_seconds": seconds,
        "baseline": baseline,
        "params": {},
        "stopped": stopped,
    }


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
    assert c["stopped_early"] == {"tickettune": 0} and "wall_ratio_pruned" not in c


def test_trials_stopped_early_count_in_the_wall_clock_never_as_a_best():
    hf = {"seconds": 1000.0, "trials": [{"number": 0, "metric": 0.90, "train_seconds": 100.0, "state": "COMPLETE"}]}
    pruned = {
        "seconds": 500.0,
        "trials": [
            {"number": 0, "metric": 0.89, "train_seconds": 100.0, "state": "COMPLETE"},
            {"number": 1, "metric": 0.95, "train_seconds": 25.0, "state": "PRUNED"},  # a rung's metric, not a best
            {"number": 2, "metric": 0.50, "train_seconds": 30.0, "state": "PRUNED"},
        ],
    }
    tt = {
        "seconds": 400.0,
        "trials": [_tt("base", 0.90, 95.0, True), _tt("a", 0.899, 60.0), _tt("s", 0.97, 10.0, stopped=True)],
    }
    c = compare(hf, tt, tolerance_pt=0.5, hf_pruned=pruned)
    assert c["tickettune_best"] == 0.899 and c["fast_trial"]["trial_id"] == "a"  # not the stopped trial
    assert c["wall_ratio"] == pytest.approx(0.4) and c["wall_ratio_pruned"] == pytest.approx(0.8)
    assert c["hf_pruned_best"] == 0.89 and c["best_diff_pt_pruned"] == pytest.approx(0.9)
    assert c["stopped_early"] == {"tickettune": 1, "hf_pruned": 2}
    assert c["hf_pruned_front"] == ["0"] and "s" not in c["tickettune_front"] and c["hf_failed"] == 0


def test_headline_is_one_entry_per_task():
    c = {
        "wall_ratio": 0.7,
        "best_diff_pt": -0.1,
        "fast_time_ratio": 0.6,
        "fast_diff_pt": -0.3,
        "fast_trial": {"trial_id": "a"},
    }
    c2 = {**c, "wall_ratio": 0.9, "wall_ratio_pruned": 0.5, "stopped_early": {"tickettune": 3, "hf_pruned": 2}}
    c1 = {**c, "wall_ratio_pruned": 0.7, "stopped_early": {"tickettune": 1, "hf_pruned": 4}}
    tax = {"dense_step_ratio": 1.02}
    h = bench.headline({"cola": {"tax": tax, "runs": [{"comparison": c1}, {"comparison": c2}]}})
    assert h == [
        {
            "task": "cola",
            "wall_ratio": pytest.approx(0.8),
            "best_diff_pt": -0.1,
            "fast_time_ratio": 0.6,
            "fast_diff_pt": -0.3,
            "wall_ratio_pruned": pytest.approx(0.6),
            "seeds": 2,
            "fast_found": 2,
            "dense_step_ratio": 1.02,
            "stopped_early": {"tickettune": 4, "hf_pruned": 6},
        }
    ]
    # a run from before these fields (kept in the JSON by finish) still makes a headline
    old = bench.headline({"sst2": {"runs": [{"comparison": c}]}})[0]
    assert old["wall_ratio_pruned"] is None and old["dense_step_ratio"] is None and old["stopped_early"] == {}


@pytest.mark.slow
def test_smoke_run_writes_json_and_png(tmp_path):
    out = bench.main(["--smoke", "--tasks", "cola", "--json", str(tmp_path / "s.json"), "--plot-dir", str(tmp_path)])
    saved = json.loads((tmp_path / "s.json").read_text())
    assert [h["task"] for h in saved["headline"]] == ["cola"]
    run = out["tasks"]["cola"]["runs"][0]
    assert len(run["hf"]["trials"]) == 2 and len(run["tickettune"]["trials"]) == 3
    assert len(run["hf_pruned"]["trials"]) == 2 and run["hf_pruned"]["recipe"]["pruner"]["n_startup_trials"] == 2
    h = saved["headline"][0]
    assert h["wall_ratio_pruned"] > 0 and h["dense_step_ratio"] > 0
    assert set(h["stopped_early"]) == {"tickettune", "hf_pruned"}
    assert out["tasks"]["cola"]["budget_steps"] == 4  # 128 rows, batch 32, 1 epoch
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


def test_the_space_holds_the_dense_model_and_light_tickets(tmp_path):
    """Item 3 of issue 28: the dense model on the fast path's levers with a sampled lr is a point of the space
    (ratio 0, enqueued after the paper's and the conservative point), and so are light tickets (~0.1)."""
    spec = load_spec(bench.tickettune_config(bench.parse_args(["--tasks", "cola"]), "cola", 0, str(tmp_path)))
    heads, ffn = spec.space["head_ratio"], spec.space["ffn_ratio"]
    assert heads.low == ffn.low == 0.0 and heads.contains(0.1) and ffn.contains(0.1) and ffn.contains(0.4)
    dense = spec.search.enqueue[2]
    assert dense == bench.DENSE and dense["head_ratio"] == dense["ffn_ratio"] == dense["dropout"] == 0.0
    assert "lr" not in dense and "lr" in spec.space  # the sampler tunes the dense model's lr


def test_hf_from_takes_the_earlier_runs_hf_arms_and_records_it(tmp_path, monkeypatch):
    """--hf-from: the HF arms come from an earlier JSON (recorded with when, which CPU, which first rung); with
    --rerun-hf-pruned only the pruned arm runs again, at this run's first rung; a missing task is named."""
    hf = {"seconds": 100.0, "trials": [{"number": 0, "metric": 0.5, "train_seconds": 40.0, "state": "COMPLETE"}]}
    pruned = {**hf, "seconds": 80.0, "pruned": 0}
    earlier = tmp_path / "earlier.json"
    earlier.write_text(
        json.dumps(
            {
                "machine": {"cpu": "AMD EPYC"},
                "config": {},
                "tasks": {
                    "cola": {"measured": "2026-12-07T12:00:00Z", "runs": [{"seed": 0, "hf": hf, "hf_pruned": pruned}]}
                },
            }
        )
    )
    ran = []
    monkeypatch.setattr(bench, "dense_steps", lambda args, task: 8)
    monkeypatch.setattr(
        bench, "run_tickettune", lambda *a: ({"seconds": 50.0, "statuses": {}, "trials": [_tt("t", 0.52, 30.0)]}, None)
    )
    monkeypatch.setattr(
        bench,
        "run_hf",
        lambda args, task, seed, spec, pruned=False: ran.append(pruned) or {**hf, "seconds": 60.0, "pruned": 0},
    )
    flags = ["--tasks", "cola", "--no-tax", "--hf-from", str(earlier), "--first-rung", "0.125"]
    run = bench.run(bench.parse_args(flags))["tasks"]["cola"]["runs"][0]
    assert ran == [] and run["comparison"]["wall_ratio"] == 0.5 and run["comparison"]["wall_ratio_pruned"] == 0.625
    assert run["hf_from"] == {"path": str(earlier), "measured": "2026-12-07T12:00:00Z", "cpu": "AMD EPYC",
                              "hf_pruned_first_rung": 0.25}  # fmt: skip
    run = bench.run(bench.parse_args([*flags, "--rerun-hf-pruned"]))["tasks"]["cola"]["runs"][0]
    assert ran == [True] and run["comparison"]["wall_ratio_pruned"] == 50 / 60
    assert run["hf_from"]["hf_pruned_first_rung"] == 0.125
    with pytest.raises(SystemExit, match="no sst2 seed 0 run"):
        bench.run(bench.parse_args(["--tasks", "sst2", "--no-tax", "--hf-from", str(earlier)]))
