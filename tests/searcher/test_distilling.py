"""A distilling search's teacher cache (searcher/distilling.py): one folder in the experiment, in every trial's
config (the baseline's included) when the search distills and has a writer; and the command's --teacher flags
(a distilled `tickettune finetune` run whose cache time is the run's)."""

import json

import pytest
import torch

from tickettune.searcher.cli import main
from tickettune.searcher.distilling import TEACHER_CACHE_DIR, with_teacher_cache
from tickettune.spaces.spec import load_spec


def _spec(tmp_path, baseline=True, space=None, **fixed):
    return load_spec(
        {
            "name": "d",
            "storage": str(tmp_path),
            "search": {"num_samples": 2, "baseline": baseline},
            "fixed": {"model": "minilm-l6", "task": "sst2", "budget_steps": 40, "search_max_steps": 20, **fixed},
            "space": space or {"distill_weight": {"low": 0.0, "high": 2.0}},
        }
    )


def test_a_distilling_search_points_every_trial_at_one_cache(tmp_path):
    spec = with_teacher_cache(_spec(tmp_path), tmp_path / "d")
    assert spec.fixed["teacher_cache"] == str((tmp_path / "d" / TEACHER_CACHE_DIR).absolute())
    assert load_spec(spec.to_dict()).fixed["teacher_cache"] == spec.fixed["teacher_cache"]  # what resume reads
    fixed_weight = _spec(tmp_path, space={"head_ratio": {"low": 0.2, "high": 0.4}}, distill_weight=0.5)
    assert "teacher_cache" in with_teacher_cache(fixed_weight, tmp_path / "d").fixed


def test_searches_that_do_not_distill_or_cannot_write_are_left_alone(tmp_path):
    plain = _spec(tmp_path, space={"head_ratio": {"low": 0.2, "high": 0.4}})
    assert "teacher_cache" not in with_teacher_cache(plain, tmp_path / "d").fixed
    no_writer = _spec(tmp_path, baseline=False)
    assert "teacher_cache" not in with_teacher_cache(no_writer, tmp_path / "d").fixed
    given = _spec(tmp_path, teacher_cache=str(tmp_path / "mine"))
    assert with_teacher_cache(given, tmp_path / "d").fixed["teacher_cache"] == str(tmp_path / "mine")


def test_distillation_flags_need_a_teacher(capsys):
    assert main(["finetune", "--distill-weight", "2"]) == 2
    assert "--distill-weight without --teacher" in capsys.readouterr().err


@pytest.mark.parametrize("kept", [False, True])
def test_finetune_with_a_teacher_caches_it_first(tmp_path, capsys, kept):
    from tickettune.trainables.testing.random_models import write_random_model

    torch.set_num_threads(1)
    model = write_random_model("bert", tmp_path / "tiny", "tiny")
    out, cache = tmp_path / "m.json", tmp_path / "cache"
    argv = ["finetune", "--model", str(model), "--teacher", str(model), "--task", "sst2", "--max-train-samples", "48"]
    argv += ["--max-eval-samples", "16", "--max-steps", "3", "--batch-size", "8", "--max-length", "24"]
    argv += ["--json", str(out)] + (["--teacher-cache", str(cache)] if kept else [])
    assert main(argv) == 0
    assert "its logits of every train row cached" in capsys.readouterr().out
    teacher = json.loads(out.read_text())["teacher"]
    assert teacher["used"] and teacher["written"] and teacher["seconds"] > 0 and teacher["weight"] == 1.0
    assert json.loads(out.read_text())["train_seconds"] > teacher["seconds"]
    assert cache.exists() == kept and (teacher["cache"] == str(cache) if kept else teacher["cache"] is None)


@pytest.mark.ray
def test_in_a_search_the_baseline_writes_the_cache_and_the_ticket_reads_it(tmp_path):
    """Trial 0, the dense baseline, writes <experiment>/teacher_cache after its training (its time and FLOPs
    counted there, above 1.0); the ticket trial after it distills from the cache and says so in its last report."""
    from tickettune.searcher.export import load_trials
    from tickettune.searcher.search import run_search
    from tickettune.trainables.ticket.format import read_info

    fixed = {
        "task": "sst2",
        "scratch": {"layers": 2, "heads": 4, "hidden": 64, "ffn": 128, "tokenizer": "minilm-l6"},
        "max_train_samples": 128,
        "max_eval_samples": 32,
        "max_length": 32,
        "batch_size": 16,
        "lr": 1.0e-3,
        "budget_steps": 16,
        "search_max_steps": 8,
        "mask_interval": 2,
        "window": 3,
        "min_ffn": 4,
        "unconverged": "ticket",
        "distill_weight": 1.0,
    }
    spec = {
        "name": "distilled",
        "storage": str(tmp_path),
        "search": {"num_samples": 1, "baseline": True, "max_concurrent": 1, "scheduler": "none", "max_failures": 0},
        "fixed": fixed,
        "space": {"head_ratio": {"low": 0.2, "high": 0.3}},
    }
    res = run_search(spec, num_cpus=2, verbose=0)
    assert res.finished and res.statuses == {"TERMINATED": 2}, res
    cache = tmp_path / "distilled" / TEACHER_CACHE_DIR
    assert (cache / "teacher.json").is_file()
    trials = load_trials(tmp_path / "distilled")
    [base] = [t for t in trials if t.is_baseline]
    [ticket] = [t for t in trials if not t.is_baseline]
    assert base.metric("relative_cost") > 1.0 and base.config["teacher_cache"] == str(cache)
    assert ticket.last["distilled"] is True
    assert read_info(ticket.ticket_dir)["distill"]["used"] is True
