"""The real thing, small: a 2-trial search of the real flow (`trainables.flow.run_flow`) on SST-2 rows
with a tiny BERT, the search space from a spec as the YAML loader builds it. Checks the early-bird stop,
the Pareto export and the tickets' reload. Inline trials by default; the same search with each trial on
2 Ray Train workers (DDP over gloo) is slow here (~2 min: 6 processes start on 2 cores)."""

import subprocess
import sys

import flow_stub
import pytest

from tickettune.searcher.export import load_trials
from tickettune.searcher.search import run_search

pytestmark = pytest.mark.ray

TINY = {"layers": 2, "heads": 4, "hidden": 64, "ffn": 128, "tokenizer": "minilm-l6"}


def spec(root, workers: int) -> dict:
    return {
        "name": "sst2-tiny",
        "storage": str(root),
        "search": {
            "num_samples": 2,
            "objective": "multi",
            "seed": 0,
            "scheduler": "none",
            "max_failures": 0,
            "workers_per_trial": workers,
        },
        "fixed": {
            "task": "sst2",
            "scratch": TINY,
            "max_train_samples": 256,
            "max_eval_samples": 64,
            "max_length": 32,
            "batch_size": 16,
            "lr": 1.0e-3,
            "search_max_steps": 60,
            "mask_interval": 5,
            "window": 3,
            "ticket_steps": 10,
            "min_ffn": 4,
            "unconverged": "ticket",
        },
        "space": {"head_ratio": {"low": 0.2, "high": 0.5}, "eps": {"low": 0.15, "high": 0.3}},
    }


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)], ids=["inline", "ddp"])
def test_real_flow_search_on_sst2(tmp_path, workers):
    import ray

    assert not ray.is_initialized()
    res = run_search(spec(tmp_path, workers), num_cpus=2, verbose=0)
    assert not ray.is_initialized()
    assert res.plan["executor"] == ("train" if workers > 1 else "inline") and res.plan["num_workers"] == workers
    assert res.finished and res.statuses == {"TERMINATED": 2}, res
    trials = load_trials(tmp_path / "sst2-tiny")
    for t in trials:
        search = [r for r in t.history if r.get("phase") == "search"]
        assert search and all("mask_distance" in r and "val_metric" in r and "relative_cost" in r for r in search)
        assert t.finished and t.ticket_dir is not None
        assert 0 <= t.metric("val_metric") <= 1 and 0 < t.metric("relative_cost") < 1
    # the early bird ended at least one search phase before its budget (the mask converged)
    birds = [t for t in trials if t.converged]
    assert birds, [(t.trial_id, [r.get("mask_distance") for r in t.history]) for t in trials]
    for t in birds:
        assert 0 < t.last["early_bird_step"] == t.last["search_steps"] < 60
    # multi-objective: the Pareto front of tickets was exported, each reloads in a fresh process
    assert res.exported == str(tmp_path / "sst2-tiny" / "pareto") and res.selection
    code = (
        "import sys; from tickettune.trainables.ticket.format import load_ticket; "
        "m, tok, info = load_ticket(sys.argv[1]); ids = tok('a gripping, funny film', return_tensors='pt'); "
        "print(info['val_metric'], tuple(m(**ids).logits.shape))"
    )
    for e in res.selection:
        r = subprocess.run([sys.executable, "-c", code, e["path"]], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert float(r.stdout.split()[0]) == pytest.approx(e["metrics"]["val_metric"])


# train: slow (test_search_train's DDP crash test resumes a Train trial from its checkpoint in the default run)
@pytest.mark.parametrize("executor", [pytest.param("train", marks=pytest.mark.slow), "inline"])
def test_real_flow_worker_crash_after_the_early_bird_resumes_at_the_ticket(tmp_path, executor):
    """The worker dies right after the search phase's checkpoint: Ray restarts it (Train's FailureConfig,
    or Tune's for an inline trial) and the restarted flow goes straight to ticket training."""
    flow_stub.by_value()
    s = spec(tmp_path, 1)
    s["search"].update(num_samples=1, max_failures=1, executor=executor, objective="single")
    s["fixed"]["seed"] = 1
    res = run_search(s, num_cpus=2, flow_fn=flow_stub.real_flow_crashing_once, verbose=0)
    assert res.finished and res.statuses == {"TERMINATED": 1}, res
    [t] = load_trials(tmp_path / "sst2-tiny")
    assert t.finished and t.ticket_dir is not None and 0 <= t.metric("val_metric") <= 1
    search = [r["step"] for r in t.history if r.get("phase") == "search"]
    ticket = [r["step"] for r in t.history if r.get("phase") == "ticket"]
    assert search == sorted(set(search)) and search[-1] == t.last["search_steps"]  # the search ran once
    assert ticket and ticket[0] >= search[-1]
    if executor == "train":
        assert (t.trial_dir / f"train_{t.trial_id}").is_dir()
    # the search checkpoint (an untrained ticket) is gone once the trial is done: Ray kept only the last
    assert not list((tmp_path / "sst2-tiny").rglob("search_ticket"))
    assert list((tmp_path / "sst2-tiny").rglob("finished.json"))


def asha_mlm_space(trial) -> dict:
    """Masked-LM pre-training of a tiny BERT from scratch: trials 0 and 2 learn (ticket_lr 1e-3), trial 1
    barely moves (1e-7), so its perplexity at ASHA's first rung is far worse than trial 0's."""
    return {
        "task": "wikitext",
        "scratch": {**TINY, "pre_ln": True},
        "max_train_samples": 512,
        "max_eval_samples": 64,
        "max_length": 32,
        "batch_size": 16,
        "lr": 1e-3,
        "eps": 0.3,
        "search_max_steps": 10,
        "mask_interval": 5,
        "window": 2,
        "ticket_steps": 24,
        "min_ffn": 4,
        "unconverged": "ticket",
        "ticket_mode": "rewind",  # a fresh run at ticket_lr after the search
        "ticket_lr": [1e-3, 1e-7, 1e-3][trial.number % 3],
        "head_ratio": trial.suggest_float("head_ratio", 0.25, 0.25),
        "eval_interval": 6,
    }


@pytest.mark.slow
def test_asha_cuts_a_weak_real_trial_on_its_dev_metric_at_equal_trial_steps(tmp_path):
    s = {
        "name": "asha-mlm",
        "storage": str(tmp_path),
        "search": {
            "num_samples": 3,
            "seed": 0,
            "scheduler": "asha",
            "max_concurrent": 1,
            "max_failures": 0,
            "mode": "min",
        },
        "fixed": {"task": "wikitext", "search_max_steps": 10, "ticket_steps": 24},  # max_t 34: rungs at 8, 16, 32
        "space": {"head_ratio": {"low": 0.2, "high": 0.3}},
    }
    res = run_search(s, num_cpus=2, space=asha_mlm_space, verbose=0)
    assert res.finished and res.statuses == {"TERMINATED": 3}, res
    trials = sorted(load_trials(tmp_path / "asha-mlm"), key=lambda t: t.config["ticket_lr"] == 1e-7)
    weak = trials[-1]
    assert weak.config["ticket_lr"] == 1e-7 and not weak.finished  # cut by ASHA, no ticket
    rungs = [r["eval_step"] for r in weak.history if "eval_step" in r]
    assert rungs and rungs[-1] < 10 + 24  # stopped before its search (at most 10) and ticket (24) steps ended
    for t in trials[:-1]:  # the learning trials ran to the end, evaluated at every eval_interval of their steps
        total = t.last["search_steps"] + t.last["ticket_steps"]
        assert t.finished and [r["eval_step"] for r in t.history if "eval_step" in r] == [*range(6, total, 6), total]


def test_a_search_with_a_dense_baseline_reports_it_and_the_report_marks_it(tmp_path):
    """`search.baseline: true` adds the dense run of the same budget as one more trial: cost 1.0, its own
    wall-clock; the report's table and plot mark it, and export never picks it (it is not a ticket)."""
    from tickettune.searcher.report import trial_table, write_report

    s = spec(tmp_path, 1)
    s["search"].update(num_samples=1, baseline=True)
    s["fixed"].update(search_max_steps=10, budget_steps=16, ticket_mode="continue")
    del s["fixed"]["ticket_steps"]
    res = run_search(s, num_cpus=2, verbose=0)
    assert res.finished and res.statuses == {"TERMINATED": 2}, res
    trials = load_trials(tmp_path / "sst2-tiny")
    [base] = [t for t in trials if t.is_baseline]
    [ticket] = [t for t in trials if not t.is_baseline]
    assert base.ticket_dir is None and base.last["phase"] == "done" and 0 <= base.metric("val_metric") <= 1
    assert base.metric("relative_cost") == pytest.approx(1.0) and base.last["eval_step"] == 16
    assert ticket.ticket_dir is not None and ticket.metric("relative_cost") < 1
    assert ticket.last["search_steps"] + ticket.last["ticket_steps"] == ticket.last["eval_step"] == 16  # continue
    header, rows = trial_table(tmp_path / "sst2-tiny")
    kinds = {r[0]: r[header.index("kind")] for r in rows}
    assert kinds == {base.trial_id: "baseline", ticket.trial_id: "ticket"}
    out = write_report(tmp_path / "sst2-tiny", print_table=False)
    assert any(p.endswith("pareto.png") for p in out["plots"])
    assert [e["trial_id"] for e in res.selection] == [ticket.trial_id]
