"""A real (tiny) search per kind of task: GLUE (MNLI, two dev sets), SQuAD v2 (QA head) and own data (a CSV),
each through a search config as the YAML loader builds it. Slow: a Ray start per search."""

from pathlib import Path

import pandas as pd
import pytest

from tickettune.searcher.export import load_trials
from tickettune.searcher.search import run_search

pytestmark = [pytest.mark.ray, pytest.mark.slow]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"  # tests/fixtures
TINY = {"layers": 2, "heads": 2, "hidden": 32, "ffn": 64}


def own_csv(root: Path) -> dict:
    df = pd.DataFrame(
        {
            "text": [f"a {'fine' if i % 3 else 'poor'} film, take {i}" for i in range(24)],
            "label": ["good" if i % 3 else "bad" for i in range(24)],
        }
    )
    df.to_csv(root / "train.csv", index=False)
    df[:8].to_csv(root / "dev.csv", index=False)
    return {"train_file": str(root / "train.csv"), "validation_file": str(root / "dev.csv")}


@pytest.mark.parametrize("task", ["mnli", "squad_v2", "own"])
def test_search_on_each_kind_of_task(tmp_path, task):
    fixed = {
        "task": own_csv(tmp_path) if task == "own" else task,
        "data_root": str(FIXTURES),
        "scratch": TINY,
        "max_length": 48,
        "batch_size": 4,
        "lr": 1.0e-3,
        "search_max_steps": 4,
        "mask_interval": 2,
        "window": 2,
        "eps": 1.0,
        "ticket_steps": 2,
        "min_ffn": 4,
        "unconverged": "ticket",
        "precision": "fp32",
    }
    spec = {
        "name": "tiny",
        "storage": str(tmp_path / "runs"),
        "fixed": fixed,
        "search": {"num_samples": 1, "scheduler": "none", "max_failures": 0},
        "space": {"head_ratio": {"low": 0.2, "high": 0.5}},
    }
    res = run_search(spec, num_cpus=2, verbose=0)
    assert res.finished and res.statuses == {"TERMINATED": 1}, res
    (trial,) = load_trials(tmp_path / "runs" / "tiny")
    assert trial.finished and trial.ticket_dir is not None
    value = trial.metric("val_metric")
    assert 0 <= value <= (100 if task == "squad_v2" else 1)
