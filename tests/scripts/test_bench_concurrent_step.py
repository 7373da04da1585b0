"""The tax measurement (scripts/bench/concurrent_step.py, benchkit/concurrent_arms.py): the window statistic counts
only windows where both runs trained, the CPU shares add up per group, every arm's config is a valid trial / search,
and (slow) the smoke run measures every arm."""

import json
import os

import pytest
from benchkit import cpu_share, step_probe
from benchkit.concurrent_arms import flow_dict, ratios, ray_config

from bench import concurrent_step as bench
from tickettune.spaces import load_spec
from tickettune.trainables.config import FlowConfig


def _run(t0: float, step_s: float, marks: int, every: int = 10, cpu_share_of_wall: float = 1.0) -> list[dict]:
    return [
        {
            "step": every * (i + 1),
            "time": t0 + i * every * step_s,
            "wall": t0 + i * every * step_s,
            "cpu": i * every * step_s * cpu_share_of_wall,
            "thread_cpu": i * every * step_s * cpu_share_of_wall,
        }
        for i in range(marks)
    ]


def test_windows_count_only_the_overlap_and_drop_each_runs_first():
    a = _run(0.0, 0.5, 8)  # marks at 0, 5, ..., 35 s
    b = _run(12.0, 0.7, 6, cpu_share_of_wall=0.5)  # 12, 19, ..., 47 s: overlap [12, 35]
    ws = step_probe.windows([a, b])
    assert {w["run"] for w in ws} == {0, 1}
    for w in ws:
        assert w["steps"] == 10
    # run a: windows inside [12, 35] are 15-20, 20-25, 25-30, 30-35 (its first window 0-5 is outside anyway)
    assert [w["start"] for w in ws if w["run"] == 0] == [40, 50, 60, 70]
    for w in ws:
        if w["run"] == 0:
            assert w["wall_ms"] == w["cpu_ms"] == w["thread_cpu_ms"] == pytest.approx(500.0)
    # run b: its first window (12-19) dropped; 19-26, 26-33 inside; 33-40 ends after 35
    assert [round(w["wall_ms"]) for w in ws if w["run"] == 1] == [700, 700]
    assert [round(w["thread_cpu_ms"]) for w in ws if w["run"] == 1] == [350, 350]
    stats = step_probe.window_stats([a, b])
    assert stats["windows"] == 6 and stats["steps"] == 60 and stats["wall_ms"] == pytest.approx(500.0)
    assert step_probe.window_stats([a, _run(100.0, 0.5, 4)])["wall_ms"] is None  # never side by side


def test_step_log_marks_and_reads_this_process():
    log = step_probe.StepLog()
    log.mark(10)
    sum(i * i for i in range(200_000))
    log.mark(20)
    d = log.to_dict()
    assert [r["step"] for r in d["records"]] == [10, 20] and d["records"][1]["thread_cpu"] > d["records"][0][
        "thread_cpu"
    ]
    f = d["facts"]
    assert f["pid"] == os.getpid() and f["main_thread"] and f["torch_threads"] >= 1 and f["affinity"]
    assert "OMP_NUM_THREADS" in f["env"] and d["thread_cpu_s"]


def test_cpu_share_groups_training_ours_and_foreign():
    def snap(cpu: dict) -> dict:  # pid -> (ppid, cpu seconds, name)
        return {
            1: (0, cpu[1], "init"),
            100: (1, cpu[100], "python bench"),
            101: (100, cpu[101], "python trial"),
            102: (100, cpu[102], "raylet"),
            200: (1, cpu[200], "python other"),
        }

    a = snap({1: 0.0, 100: 1.0, 101: 5.0, 102: 0.5, 200: 3.0})
    b = snap({1: 0.0, 100: 2.0, 101: 14.0, 102: 1.5, 200: 8.0})
    s = cpu_share.share([(0.0, a), (10.0, b)], 0.0, 10.0, trainers={101}, root=100)
    assert s["cores"] == {"training": 0.9, "benchmark_other": 0.2, "foreign": 0.5}
    assert s["by_name"]["training: python trial"] == 0.9 and s["seconds"] == 10.0
    assert cpu_share.share([(0.0, a)], 0.0, 10.0, {101}, 100)["cores"] == {}


def test_every_arm_runs_a_valid_dense_trial_on_the_plain_path(tmp_path):
    args = bench.parse_args(["--task", "sst2", "--steps", "40"])
    cfg = FlowConfig.from_dict(flow_dict(args))
    assert cfg.baseline and not cfg.fast_path and cfg.budget_steps == 40 and cfg.report_interval == 10
    lv = cfg.levers()
    assert lv["embeddings"] == "train" and lv["dropout"] is None  # HF's settings: nothing frozen, dropout as is
    spec = load_spec(ray_config("tt_ray", args, tmp_path))
    assert spec.search.total_trials == 2 and spec.search.max_concurrent == 2 and spec.search.cpus_per_worker == 1
    assert spec.fixed["baseline"] and spec.search.scheduler == "none"


def test_arguments_and_ratios():
    with pytest.raises(SystemExit):
        bench.parse_args(["--arms", "tt_ray,nope"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--steps", "20"])  # 2 windows at report_interval 10: none left after the first
    smoke = bench.parse_args(["--smoke"])
    assert smoke.steps == 12 and smoke.report_interval == 2 and smoke.train_samples == 256

    def arm(walls: dict, cpu: float = 500.0) -> dict:
        return {"by_start": {s: {"wall_ms": w, "thread_cpu_ms": cpu, "n": 2} for s, w in walls.items()}}

    # window 20 holds long batches (1000 ms), 30 and 40 short ones; HF lacks window 40 (outside its overlap)
    arms = {
        "tt_ray": arm({20: 1200.0, 30: 600.0, 40: 550.0}),
        "hf_process": arm({20: 1000.0, 30: 500.0}),
        "tt_process": {"by_start": {}},
    }
    r = ratios(arms)
    assert r["dense_step_ratio"] == pytest.approx(1.2) and r["dense_step_ratio_cpu"] == pytest.approx(1.0)
    assert r["plain_step_ratio"] is None and r["nice15_vs_nice0"] is None
    # a ratio of medians over different windows would say 600 / 750 = 0.8: the long window decides
    assert step_probe.matched_ratio({10: {"wall_ms": 600.0}}, {20: {"wall_ms": 750.0}}) is None


def test_windows_of_the_same_steps_are_grouped_across_runs_and_rounds():
    a, b = _run(0.0, 0.5, 6), _run(0.0, 0.7, 6)
    grouped = step_probe.by_start(step_probe.windows([a, b]) + step_probe.windows([a, a]))
    assert list(grouped) == [20, 30, 40, 50]
    assert grouped[20]["n"] == 4 and grouped[20]["wall_ms"] == pytest.approx((500 + 700 + 500 + 500) / 4)


@pytest.mark.slow
def test_smoke_measures_every_arm(tmp_path):
    out = tmp_path / "tax.json"
    res = bench.main(["--smoke", "--json", str(out)])
    assert set(res["arms"]) == set(bench.ARMS)
    for arm, a in res["arms"].items():
        assert a["windows"] >= 2 and a["wall_ms"] > 0, arm
        runs = a["rounds"][0]["runs"]
        assert len(runs) == 2 and all(r["facts"]["torch_threads"] == 1 for r in runs), arm
        assert a["rounds"][0]["cpu_share"]["cores"]["training"] > 0, arm
    ray_runs = res["arms"]["tt_ray"]["rounds"][0]["runs"]
    assert not any(r["facts"]["main_thread"] for r in ray_runs)  # Tune runs the trial in a thread of its own
    assert [r["facts"]["nice"] for r in ray_runs] == [0, 0]  # ray_session's RAY_worker_niceness
    nice15 = res["arms"]["tt_ray_nice15"]["rounds"][0]["runs"]
    assert [r["facts"]["nice"] for r in nice15] == [15, 15]  # Ray's own default, for the arm that measures it
    by = {a: res["arms"][a]["by_start"] for a in ("tt_ray", "hf_process")}
    assert res["dense_step_ratio"] == pytest.approx(step_probe.matched_ratio(by["tt_ray"], by["hf_process"]))
    assert json.loads(out.read_text())["machine"]["model_name"]


def test_measure_task_takes_the_search_benchmarks_sizes(monkeypatch):
    from benchkit import concurrent_arms

    seen = {}
    monkeypatch.setattr(concurrent_arms, "measure", lambda args: seen.setdefault("args", args))
    concurrent_arms.measure_task("cola", "minilm-l6", None, 1, {"max_length": 64, "train_samples": None}, 100)
    a = seen.pop("args")
    assert (a.steps, a.batch_size, a.report_interval, a.max_length, a.train_samples) == (100, 32, 10, 64, None)
    assert a.arms == list(concurrent_arms.SEARCH_ARMS) and a.threads == 1 and a.rounds == 1
    concurrent_arms.measure_task("sst2", "minilm-l6", None, 1, {"max_length": 32, "train_samples": 128}, 100, True)
    a = seen["args"]
    assert (a.steps, a.batch_size, a.report_interval, a.train_samples) == (12, 8, 2, 128)


def test_the_competitor_spins_until_killed():
    import time

    from benchkit.concurrent_arms import competitor

    proc = competitor()
    try:
        time.sleep(1.0)
        before = cpu_share.snapshot()[proc.pid][1]
        time.sleep(0.5)
        assert cpu_share.snapshot()[proc.pid][1] > before  # it burns CPU at normal priority
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == os.nice(0)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode is not None


def test_a_saved_measurement_is_reanalysed_from_its_records(tmp_path):
    def arm_round(step_s: float) -> dict:
        recs = [_run(0.0, step_s, 6), _run(0.0, step_s, 6)]
        return {"records": recs, "runs": [], "cpu_share": {"cores": {"foreign": 0.01}}, "seconds": 30.0}

    saved = {"config": {"threads": 1}, "machine": {"model_name": "x"}, "arms": {}, "ratios": {"dense_step_ratio": 9}}
    saved["arms"] = {"hf_process": {"rounds": [arm_round(0.5)]}, "tt_ray": {"rounds": [arm_round(0.55)]}}
    path = tmp_path / "saved.json"
    path.write_text(json.dumps(saved))
    res = bench.main(["--reanalyse", str(path)])
    assert res["dense_step_ratio"] == pytest.approx(1.1) and res["foreign_cores_max"] == 0.01
    on_disk = json.loads(path.read_text())
    assert on_disk["ratios"]["dense_step_ratio"] == pytest.approx(1.1) and on_disk["reanalysed"]
    assert on_disk["arms"]["tt_ray"]["rounds"][0]["records"] == saved["arms"]["tt_ray"]["rounds"][0]["records"]
