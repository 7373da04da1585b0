"""The ticket map (scripts/bench/ticket_map.py): its ladder of FLOP ratios, the headline as the issue defines it,
and the --smoke run of the whole script (dense with its teacher cache, plain and distilled tickets, JSON and PNG)."""

import json

import pytest

from bench import ticket_map as bench


def test_the_ladder_runs_from_light_to_beyond_the_papers_point():
    args = bench.parse_args(["--tasks", "cola"])
    dense = bench.dense_shape(args.model)
    ratios = [bench.predicted_ratio(dense, i, args.max_length) for i in args.rungs]
    assert len(ratios) == 5 and ratios == sorted(ratios, reverse=True)
    assert ratios[0] == pytest.approx(0.9, abs=0.02) and ratios[bench.PAPER - 1] == pytest.approx(0.62, abs=0.01)
    assert ratios[-1] < 0.55
    assert bench.rung_ratios(bench.PAPER) == pytest.approx((1 / 3, 0.4))
    names = [bench.arm_name(a) for a in bench.arms_of(args)]
    assert names[:7] == [f"continue@{i}" for i in range(1, 6)] + ["rewind@1", "rewind@4"]
    assert names[7:] == [f"continue@{i}+distill" for i in range(1, 6)]
    assert all(not a["distill"] for a in bench.arms_of(bench.parse_args(["--no-distill"])))


def _arm(metric, flop, seconds=10.0, mode="continue", rung=1, distill=False):
    return {"mode": mode, "rung": rung, "distill": distill, "metric": metric, "flop_ratio": flop,
            "train_seconds": seconds}  # fmt: skip


def test_headline_follows_the_issue():
    runs = {
        "dense": [_arm(0.50, 1.0, 20.0), _arm(0.52, 1.0, 20.0)],
        "continue@1": [_arm(0.505, 0.9, 18.0), _arm(0.515, 0.9, 18.0)],
        "continue@3": [_arm(0.500, 0.72, 14.0), _arm(0.510, 0.72, 16.0)],  # -0.5 pt: within 1.5
        "continue@4": [_arm(0.46, 0.62), _arm(0.48, 0.62)],  # -4 pt
        "continue@4+distill": [_arm(0.49, 0.62, distill=True), _arm(0.51, 0.62, distill=True)],  # -1 pt: within
    }
    runs["continue@4+distill"][0]["teacher_cache_seconds"] = runs["continue@4+distill"][1]["teacher_cache_seconds"] = 2
    h = bench.headline("cola", {"summary": bench.summarize(runs), "tolerance_pt": 1.5})
    assert set(h) == {
        "task",
        "tolerance_pt",
        "dense_metric",
        "lowest_flop_ratio_within",
        "its_metric_diff_pt",
        "its_time_ratio",
        "distill_gain_pt",
    }
    assert h["dense_metric"] == pytest.approx(0.51) and h["lowest_flop_ratio_within"] == pytest.approx(0.62)
    assert h["its_metric_diff_pt"] == pytest.approx(-1.0)
    assert h["its_time_ratio"] == pytest.approx(12.0 / 20.0)  # the distilled arm carries the cache's seconds
    assert h["distill_gain_pt"] == pytest.approx(3.0)
    none = bench.headline("cola", {"summary": bench.summarize({k: runs[k] for k in ("dense", "continue@4")}),
                                   "tolerance_pt": 1.5})  # fmt: skip
    assert none["lowest_flop_ratio_within"] is None and none["distill_gain_pt"] is None


def test_smoke_run(tmp_path):
    out = tmp_path / "map.json"
    res = bench.main(["--smoke", "--tasks", "cola", "--json", str(out), "--plot", str(tmp_path / "map.png")])
    t = res["tasks"]["cola"]
    plain = {"continue@1", "continue@4", "rewind@4"}
    assert set(t["runs"]) == {"dense", *plain, "continue@1+distill", "continue@4+distill"}
    assert t["runs"]["dense"][0]["teacher_cache_seconds"] > 0 and t["runs"]["dense"][0]["teacher"]["written"]
    assert all(r["teacher"]["used"] for name, rs in t["runs"].items() if name.endswith("+distill") for r in rs)
    assert all(r["teacher"] is None for r in t["runs"]["continue@4"])
    assert t["summary"]["continue@4"]["flop_ratio"] < t["summary"]["continue@1"]["flop_ratio"] < 1.0
    [h] = json.loads(out.read_text())["headline"]
    assert h["task"] == "cola" and h["tolerance_pt"] == 1.5 and h["distill_gain_pt"] is not None
    assert (tmp_path / "map.png").stat().st_size > 0 and not out.with_suffix(".partial.json").exists()


def test_no_detect_draws_every_ticket_at_the_search_budget(monkeypatch):
    """--no-detect (a later draw): the ticket arms run with detect off, so the flow draws at --search-max-steps."""
    seen = []

    def fake_flow(args, task, seed, epochs, every, mode, sets):
        seen.append(sets)
        return {"ticket_layout": {"heads_per_layer": [9] * 6, "ffn_per_layer": [1000] * 6}, "metric": 0.0}

    monkeypatch.setattr(bench, "arm_flow", fake_flow)
    for flags, detect in (([], True), (["--no-detect", "--search-max-steps", "300"], False)):
        args = bench.parse_args(["--tasks", "cola", *flags])
        dense = bench.dense_shape(args.model)
        bench.ticket_arm(args, "cola", 0, 3.0, {"mode": "continue", "rung": 3, "distill": False}, "c", dense)
        assert seen[-1].get("detect", True) is detect
    assert args.search_max_steps == 300


def test_a_lever_is_one_more_arm_with_its_overrides(monkeypatch):
    """--lever NAME:...: an arm of its own name whose FlowConfig overrides (and ratios) reach the flow."""
    seen = []

    def fake_flow(args, task, seed, epochs, every, mode, sets):
        seen.append((args.head_ratio, args.ffn_ratio, mode, sets))
        return {"ticket_layout": {"heads_per_layer": [12] * 6, "ffn_per_layer": [800] * 6}, "metric": 0.0,
                "train_seconds": 1.0}  # fmt: skip

    monkeypatch.setattr(bench, "arm_flow", fake_flow)
    levers = ["--lever", "ffn-by-layer:rung=3,ffn_scope=layer", "--lever", "ffn-only:head_ratio=0,ffn_ratio=0.45"]
    args = bench.parse_args(["--tasks", "cola", "--no-distill", "--rungs", "3", "--rewind-rungs", "", *levers])
    arms = bench.arms_of(args)
    assert [bench.arm_name(a) for a in arms] == ["continue@3", "ffn-by-layer", "ffn-only"]
    dense = bench.dense_shape(args.model)
    rs = [bench.ticket_arm(args, "cola", 0, 3.0, a, "cache", dense) for a in arms[1:]]
    assert seen[0] == (pytest.approx(0.25), pytest.approx(0.3), "continue", {"ffn_scope": "layer"})
    assert seen[1] == (0, 0.45, "continue", {})
    assert rs[1]["lever"] == {"head_ratio": 0, "ffn_ratio": 0.45} and 0.5 < rs[1]["flop_ratio"] < 0.8
    summary = bench.summarize({"dense": [{**rs[0], "flop_ratio": 1.0}], "ffn-only": rs[1:]})
    assert summary["ffn-only"]["lever"] == {"head_ratio": 0, "ffn_ratio": 0.45}
    bad_levers = ("ffn_scope=layer", "x:no_such_field=1", "x:rung=12,ffn_scope=layer", "x:rung=three,ffn_scope=layer",
                  "continue@3:ffn_scope=layer")  # fmt: skip
    for bad in bad_levers:
        with pytest.raises(SystemExit):
            bench.parse_args(["--tasks", "cola", "--rungs", "3", "--lever", bad])


def test_a_distilling_lever_gets_the_dense_runs_cache_without_the_distilled_ladder(monkeypatch):
    """--no-distill with a lever that distills: the dense run still writes the cache, and the lever reads it."""
    seen = []

    def fake_flow(args, task, seed, epochs, every, mode, sets):
        seen.append((mode, sets))
        layout = None if mode is None else {"heads_per_layer": [12] * 6, "ffn_per_layer": [800] * 6}
        return {"ticket_layout": layout, "metric": 0.0, "train_seconds": 1.0, "phase_seconds": {}}

    monkeypatch.setattr(bench, "arm_flow", fake_flow)
    args = bench.parse_args(["--tasks", "cola", "--seeds", "1", "--no-distill", "--rungs", "3", "--rewind-rungs", "",
                             "--lever", "kd:rung=3,distill_weight=0.5"])  # fmt: skip
    bench.run(args)
    (_, dense_sets), (_, plain_sets), (_, lever_sets) = seen
    assert dense_sets["teacher_cache"] and "teacher_cache" not in plain_sets
    assert lever_sets["teacher_cache"] == dense_sets["teacher_cache"] and lever_sets["distill_weight"] == 0.5
