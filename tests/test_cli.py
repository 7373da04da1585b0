"""The `tickettune` command: a real short fine-tune, and errors before any compute."""
import json

import pytest
import torch

from tickettune.searcher.cli import main


def test_finetune_minilm_on_real_sst2_rows(tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "m.json"
    rc = main(["finetune", "--model", "minilm-l6", "--task", "sst2", "--max-train-samples", "64",
               "--max-eval-samples", "64", "--max-steps", "8", "--batch-size", "8", "--max-length", "32",
               "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "dev accuracy=" in printed
    result = json.loads(out.read_text())
    assert result["steps"] == 8 and 0.0 <= result["metrics"]["accuracy"] <= 1.0


def test_finetune_rejects_unknown_task_before_loading():
    with pytest.raises(SystemExit, match="unknown task 'mnli'"):
        main(["finetune", "--task", "mnli"])


def test_earlybert_rejects_bad_setting_before_compute():
    with pytest.raises(ValueError, match="head_ratio=1.5"):
        main(["earlybert", "--set", "head_ratio=1.5"])


def test_search_rejects_bad_config_before_ray(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfixed: {head_ratio: 2.0, lambda_head: -1}\nspace: {eps: {low: 0.3, high: 0.1}}\n")
    with pytest.raises(ValueError) as err:
        main(["search", str(bad)])
    text = str(err.value)
    assert "head_ratio" in text and "lambda_head" in text and "eps" in text
