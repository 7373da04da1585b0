"""Classification and regression metrics from model outputs: sklearn and scipy.stats, no task knowledge.

A task (trainables/tasks) says which metrics it reports; `classification_metrics` / `regression_metrics`
compute them from what the model emits: logits of shape (n, num_labels) for classification (argmax is taken;
1-D integer class ids are accepted too) and (n,) or (n, 1) scores for regression. NumPy arrays, lists and
torch tensors (any device, bf16 included) all work. A correlation that is undefined because one side is
constant (a collapsed regressor) is reported as 0.0, the value sklearn gives Matthews correlation in the
same case, rather than NaN, so that a search can still rank the trial. Every metric here is higher-is-better,
except `dev_loss` (the loss the model trains on, taken on dev: what moves before an argmax-based metric does).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy.special import log_softmax
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef


def as_array(x, what: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor; torch is not imported here
        x = x.detach().cpu()
        x = (x.float() if x.is_floating_point() else x).numpy()
    try:
        return np.asarray(x)
    except ValueError as e:  # ragged lists
        raise ValueError(f"{what} is not a rectangular array: {e}") from None


def _correlation(fn: Callable, a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0  # undefined (constant input): see the module docstring
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(fn(a, b).statistic)
    return 0.0 if np.isnan(value) else value


CLASSIFICATION: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda y, p: float(accuracy_score(y, p)),
    "matthews_correlation": lambda y, p: float(matthews_corrcoef(y, p)),
    "f1": lambda y, p: float(f1_score(y, p, average="binary", zero_division=0.0)),  # of class 1, binary tasks
    "macro_f1": lambda y, p: float(f1_score(y, p, average="macro", zero_division=0.0)),
}
REGRESSION: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "pearson": lambda y, p: _correlation(pearsonr, p, y),
    "spearmanr": lambda y, p: _correlation(spearmanr, p, y),
}


def _checked(name: str, predictions, labels) -> tuple[np.ndarray, np.ndarray]:
    preds, labels = as_array(predictions, "predictions"), as_array(labels, "labels")
    if preds.ndim == 0 or labels.ndim == 0:
        raise ValueError(f"{name}: predictions and labels must be arrays, not scalars")
    if len(preds) != len(labels):
        raise ValueError(f"{name}: {len(preds)} predictions but {len(labels)} labels")
    if labels.size != len(labels):
        raise ValueError(f"{name}: labels must have shape (n,) or (n, 1), got {labels.shape}")
    if len(preds) == 0:
        raise ValueError(f"{name}: no predictions to score")
    if preds.dtype.kind not in "biuf" or labels.dtype.kind not in "biuf":
        raise ValueError(f"{name}: predictions and labels must be numeric")
    if not np.isfinite(preds).all():
        raise ValueError(f"{name}: predictions contain NaN or infinity ({(~np.isfinite(preds)).sum()} values)")
    return preds, labels.reshape(len(labels))


def _pick(table: dict, metrics: Sequence[str], name: str) -> None:
    unknown = [m for m in metrics if m not in table]
    if unknown:
        raise ValueError(f"{name}: no implementation for metric(s) {unknown}")


def classification_metrics(
    metrics: Sequence[str], num_labels: int, predictions, labels, name: str = "task"
) -> dict[str, float]:
    """`metrics` (keys of CLASSIFICATION) as plain floats, in the order given."""
    _pick(CLASSIFICATION, metrics, name)
    preds, y = _checked(name, predictions, labels)
    if preds.ndim == 2:
        if preds.shape[1] != num_labels:
            raise ValueError(f"{name}: logits have {preds.shape[1]} columns, the task has {num_labels} classes")
        p = preds.argmax(axis=1)
    elif preds.ndim == 1 and np.issubdtype(preds.dtype, np.integer):
        p = preds
    else:
        raise ValueError(
            f"{name}: predictions must be logits of shape (n, {num_labels}) or integer class ids "
            f"of shape (n,); got shape {preds.shape} dtype {preds.dtype}"
        )
    if not np.all(np.mod(y, 1) == 0) or y.min() < 0 or y.max() >= num_labels:
        raise ValueError(f"{name}: labels must be class ids in 0..{num_labels - 1}")
    y = y.astype(np.int64)
    return {m: CLASSIFICATION[m](y, p) for m in metrics}


def regression_metrics(metrics: Sequence[str], predictions, labels, name: str = "task") -> dict[str, float]:
    """`metrics` (keys of REGRESSION) as plain floats, in the order given."""
    _pick(REGRESSION, metrics, name)
    preds, y = _scores(name, predictions, labels)
    return {m: REGRESSION[m](y, preds) for m in metrics}


def _scores(name: str, predictions, labels) -> tuple[np.ndarray, np.ndarray]:
    """Regression predictions (n,) or (n, 1) and labels, both (n,) float64."""
    preds, y = _checked(name, predictions, labels)
    if preds.ndim == 2 and preds.shape[1] == 1:
        preds = preds[:, 0]
    if preds.ndim != 1:
        raise ValueError(f"{name}: regression predictions must have shape (n,) or (n, 1), got {preds.shape}")
    return preds.astype(np.float64), y.astype(np.float64)


def dev_loss(predictions, labels, regression: bool, name: str = "task") -> float:
    """The training loss on dev, lower is better: mean cross-entropy of logits (n, C), or mean squared error.

    Early in fine-tuning a model may predict the majority class on every dev example (CoLA's MCC is then 0 for
    every trial); the loss still ranks trials there."""
    if regression:
        preds, y = _scores(name, predictions, labels)
        return float(np.mean((preds - y) ** 2))
    preds, y = _checked(name, predictions, labels)
    if preds.ndim != 2:
        raise ValueError(f"{name}: a dev loss needs logits of shape (n, classes), got shape {preds.shape}")
    log_p = log_softmax(preds.astype(np.float64), axis=1)
    return float(-log_p[np.arange(len(y)), y.astype(np.int64)].mean())


__all__ = ["CLASSIFICATION", "REGRESSION", "as_array", "classification_metrics", "dev_loss", "regression_metrics"]
