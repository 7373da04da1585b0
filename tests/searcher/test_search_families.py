"""A search over a RoBERTa-family checkpoint given as a local directory (a tiny random RoBERTa saved with
the MiniLM tokenizer): the real flow end to end, inline trials, the ticket reloaded in a fresh process."""

import subprocess
import sys

import pytest

from tickettune.searcher.export import load_trials
from tickettune.searcher.search import run_search
from tickettune.trainables.testing.random_models import Size, write_random_model

pytestmark = pytest.mark.ray


def test_search_with_a_local_roberta_dir(tmp_path):
    import ray

    model_dir = write_random_model("roberta", tmp_path / "tiny-roberta", Size(hidden=64, layers=2, heads=4, ffn=128))
    spec = {
        "name": "sst2-roberta",
        "storage": str(tmp_path / "runs"),
        "search": {
            "num_samples": 1,
            "objective": "multi",
            "seed": 0,
            "scheduler": "none",
            "max_failures": 0,
            "workers_per_trial": 1,
        },
        "fixed": {
            "task": "sst2",
            "model": str(model_dir),
            "max_train_samples": 128,
            "max_eval_samples": 32,
            "max_length": 32,
            "batch_size": 16,
            "lr": 1.0e-3,
            "search_max_steps": 20,
            "mask_interval": 5,
            "window": 2,
            "ticket_steps": 5,
            "min_ffn": 4,
            "unconverged": "ticket",
        },
        "space": {"head_ratio": {"low": 0.2, "high": 0.5}},
    }
    res = run_search(spec, num_cpus=2, verbose=0)
    assert not ray.is_initialized()
    assert res.finished and res.statuses == {"TERMINATED": 1}, res
    (trial,) = load_trials(tmp_path / "runs" / "sst2-roberta")
    assert trial.finished and trial.ticket_dir is not None
    assert 0 <= trial.metric("val_metric") <= 1 and 0 < trial.metric("relative_cost") < 1
    code = (
        "import sys; from tickettune.trainables.ticket.format import load_ticket; "
        "m, tok, info = load_ticket(sys.argv[1]); ids = tok('a gripping, funny film', return_tensors='pt'); "
        "print(type(m).__name__, sorted(ids), tuple(m(**ids).logits.shape))"
    )
    r = subprocess.run([sys.executable, "-c", code, trial.ticket_dir], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "RobertaForSequenceClassification"
    assert "token_type_ids" not in r.stdout and "(1, 2)" in r.stdout
