"""The `tickettune` command: a real short fine-tune, and errors before any compute."""

import json

import pytest
import torch

from tickettune.searcher.cli import main


def test_finetune_minilm_on_real_sst2_rows(tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "m.json"
    rc = main(
        [
            "finetune",
            "--model",
            "minilm-l6",
            "--task",
            "sst2",
            "--max-train-samples",
            "64",
            "--max-eval-samples",
            "64",
            "--max-steps",
            "8",
            "--batch-size",
            "8",
            "--max-length",
            "32",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "dev accuracy=" in printed
    result = json.loads(out.read_text())
    assert result["steps"] == 8 and 0.0 <= result["metrics"]["accuracy"] <= 1.0


def test_finetune_rejects_unknown_task_before_loading(capsys):
    assert main(["finetune", "--task", "boolq"]) == 2
    err = capsys.readouterr().err
    assert "tickettune finetune: error: unknown task 'boolq'" in err and "Traceback" not in err


def test_earlybert_rejects_bad_setting_before_compute(capsys):
    assert main(["earlybert", "--set", "head_ratio=1.5"]) == 2
    assert "head_ratio=1.5" in capsys.readouterr().err
    with pytest.raises(ValueError, match="head_ratio=1.5"):  # --debug: the exception itself
        main(["--debug", "earlybert", "--set", "head_ratio=1.5"])


def test_search_rejects_bad_config_before_ray(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfixed: {head_ratio: 2.0, lambda_head: -1}\nspace: {eps: {low: 0.3, high: 0.1}}\n")
    assert main(["search", str(bad)]) == 2
    text = capsys.readouterr().err
    assert "head_ratio" in text and "lambda_head" in text and "eps" in text and "Traceback" not in text
