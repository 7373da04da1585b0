"""trainables/metrics.py (through tasks/glue.glue_metrics) against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tickettune.trainables.tasks.glue import TASKS, glue_metrics
from tickettune.trainables.tasks.metrics import dev_loss

# logits -> argmax [0, 1, 0, 1]; labels [0, 1, 1, 1]: TP=2 TN=1 FP=0 FN=1
LOGITS = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.5], [-1.0, 1.0]])
LABELS = np.array([0, 1, 1, 1])


def test_sst2_accuracy():
    assert glue_metrics("sst2", LOGITS, LABELS) == {"accuracy": 0.75}


def test_cola_matthews_by_hand():
    out = glue_metrics("cola", LOGITS, LABELS)
    assert list(out) == ["matthews_correlation", "accuracy"]
    # (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (2*1 - 0*1) / sqrt(2*3*1*2)
    assert out["matthews_correlation"] == pytest.approx(2 / math.sqrt(12))
    assert out["accuracy"] == 0.75


def test_stsb_correlations_by_hand():
    preds = np.array([[1.0], [2.0], [3.0], [4.0]])  # (n, 1): the regression head's shape
    labels = np.array([1.0, 2.0, 3.0, 5.0])
    out = glue_metrics("stsb", preds, labels)
    assert list(out) == ["pearson", "spearmanr"]
    # deviations x: -1.5 -.5 .5 1.5; y: -1.75 -.75 .25 2.25; sum xy = 6.5, sum x^2 = 5, sum y^2 = 8.75
    assert out["pearson"] == pytest.approx(6.5 / math.sqrt(5 * 8.75))
    assert out["spearmanr"] == pytest.approx(1.0)  # same ranks
    # reversed order of two: ranks 1 2 4 3 vs 1 2 3 4 -> rho = 1 - 6*2 / (4*15) = 0.8
    assert glue_metrics("stsb", [1.0, 2.0, 4.0, 3.0], labels)["spearmanr"] == pytest.approx(0.8)


def test_main_metric_is_returned_for_every_task():
    for name, spec in TASKS.items():
        preds = np.pad(LOGITS, ((0, 0), (0, spec.num_labels - 2))) if not spec.is_regression else LOGITS[:, 1]
        labels = LABELS if not spec.is_regression else LABELS * 1.5
        out = glue_metrics(name, preds, labels)
        assert tuple(out) == spec.metrics and spec.main_metric in out
        assert all(type(v) is float for v in out.values())


def test_accepts_tensors_class_ids_and_bf16():
    assert glue_metrics(
        "sst2", torch.tensor(LOGITS, dtype=torch.bfloat16, requires_grad=True), torch.tensor(LABELS)
    ) == {"accuracy": 0.75}
    assert glue_metrics("sst2", np.array([0, 1, 0, 1]), LABELS.tolist()) == {"accuracy": 0.75}
    assert glue_metrics("SST-2", LOGITS.tolist(), LABELS.reshape(-1, 1)) == {"accuracy": 0.75}


def test_constant_predictions_score_zero():
    assert glue_metrics("stsb", np.full(4, 2.5), [1.0, 2.0, 3.0, 5.0]) == {"pearson": 0.0, "spearmanr": 0.0}
    assert glue_metrics("cola", np.tile([0.0, 1.0], (4, 1)), LABELS)["matthews_correlation"] == 0.0


def test_errors():
    with pytest.raises(ValueError, match="4 predictions but 3 labels"):
        glue_metrics("sst2", LOGITS, LABELS[:3])
    with pytest.raises(ValueError, match="no predictions"):
        glue_metrics("cola", np.zeros((0, 2)), np.zeros(0))
    with pytest.raises(ValueError, match="3 columns"):
        glue_metrics("sst2", np.zeros((4, 3)), LABELS)
    with pytest.raises(ValueError, match="integer class ids"):
        glue_metrics("sst2", np.array([0.2, 0.9, 0.1, 0.7]), LABELS)
    with pytest.raises(ValueError, match="NaN"):
        glue_metrics("stsb", np.array([1.0, np.nan, 2.0, 3.0]), [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match=r"shape \(n,\) or \(n, 1\)"):
        glue_metrics("stsb", np.zeros((4, 2)), [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="class ids in 0..1"):
        glue_metrics("cola", LOGITS, [0, 1, 2, 1])
    with pytest.raises(ValueError, match="unknown GLUE task"):
        glue_metrics("boolq", LOGITS, LABELS)


def test_mrpc_and_qqp_report_f1_first_then_accuracy():
    # argmax [0, 1, 0, 1] vs labels [0, 1, 1, 1]: TP=2 FP=0 FN=1 -> precision 1, recall 2/3, F1 = 0.8
    for task in ("mrpc", "qqp"):
        assert glue_metrics(task, LOGITS, LABELS) == {"f1": pytest.approx(0.8), "accuracy": 0.75}
        assert TASKS[task].main_metric == "f1"


def test_three_class_accuracy_and_classification_metric_table():
    logits = np.eye(3)[[0, 1, 2, 2, 1]]
    assert glue_metrics("mnli", logits, [0, 1, 2, 1, 1]) == {"accuracy": 0.8}
    with pytest.raises(ValueError, match="class ids in 0..2"):
        glue_metrics("mnli", logits, [0, 1, 3, 1, 1])


def test_dev_loss_is_the_training_loss_on_dev():
    """Cross-entropy of the logits as torch takes it (large logits too), squared error for regression."""
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.4], [300.0, -300.0]])
    labels = torch.tensor([0, 1, 1])
    want = torch.nn.functional.cross_entropy(logits.double(), labels).item()
    assert dev_loss(logits, labels, regression=False) == pytest.approx(want)
    assert dev_loss([[1.0], [3.0]], [2.0, 2.0], regression=True) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="needs logits"):
        dev_loss([0, 1], [0, 1], regression=False)
