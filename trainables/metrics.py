"""GLUE metrics from model outputs: sklearn for classification, scipy.stats for STS-B correlations.

`glue_metrics(task, predictions, labels)` returns exactly the task's `TaskSpec.metrics` (data.TASKS), so
``result[spec.main_metric]`` is the number to optimise; every metric here is higher-is-better.

Predictions are what the model emits: logits of shape (n, num_labels) for classification (argmax is taken;
1-D integer class ids are accepted too) and (n,) or (n, 1) scores for regression. NumPy arrays, lists and
torch tensors (any device, bf16 included) all work. A correlation that is undefined because one side is
constant (a collapsed regressor) is reported as 0.0, the value sklearn gives Matthews correlation in the
same case, rather than NaN, so that a search can still rank the trial.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from .data import TaskSpec, task_spec


def _as_array(x, what: str) -> np.ndarray:
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
}
REGRESSION: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "pearson": lambda y, p: _correlation(pearsonr, p, y),
    "spearmanr": lambda y, p: _correlation(spearmanr, p, y),
}


def _class_ids(preds: np.ndarray, spec: TaskSpec) -> np.ndarray:
    if preds.ndim == 2:
        if preds.shape[1] != spec.num_labels:
            raise ValueError(f"{spec.name}: logits have {preds.shape[1]} columns, "
                             f"the task has {spec.num_labels} classes")
        return preds.argmax(axis=1)
    if preds.ndim == 1 and np.issubdtype(preds.dtype, np.integer):
        return preds
    raise ValueError(f"{spec.name}: predictions must be logits of shape (n, {spec.num_labels}) or integer class ids "
                     f"of shape (n,); got shape {preds.shape} dtype {preds.dtype}")


def glue_metrics(task: str | TaskSpec, predictions, labels) -> dict[str, float]:
    """The task's metrics (`TaskSpec.metrics`) as plain floats, e.g. {"matthews_correlation": .., "accuracy": ..}."""
    spec = task_spec(task)
    preds, labels = _as_array(predictions, "predictions"), _as_array(labels, "labels")
    if preds.ndim == 0 or labels.ndim == 0:
        raise ValueError(f"{spec.name}: predictions and labels must be arrays, not scalars")
    if len(preds) != len(labels):
        raise ValueError(f"{spec.name}: {len(preds)} predictions but {len(labels)} labels")
    if labels.size != len(labels):
        raise ValueError(f"{spec.name}: labels must have shape (n,) or (n, 1), got {labels.shape}")
    if len(preds) == 0:
        raise ValueError(f"{spec.name}: no predictions to score")
    if preds.dtype.kind not in "biuf" or labels.dtype.kind not in "biuf":
        raise ValueError(f"{spec.name}: predictions and labels must be numeric")
    if not np.isfinite(preds).all():
        raise ValueError(f"{spec.name}: predictions contain NaN or infinity ({(~np.isfinite(preds)).sum()} values)")
    if spec.is_regression:
        if preds.ndim == 2 and preds.shape[1] == 1:
            preds = preds[:, 0]
        if preds.ndim != 1:
            raise ValueError(f"{spec.name}: regression predictions must have shape (n,) or (n, 1), got {preds.shape}")
        y, p = labels.reshape(len(labels)).astype(np.float64), preds.astype(np.float64)
        table = REGRESSION
    else:
        p = _class_ids(preds, spec)
        y = labels.reshape(len(labels))
        if not np.all(np.mod(y, 1) == 0) or y.min() < 0 or y.max() >= spec.num_labels:
            raise ValueError(f"{spec.name}: labels must be class ids in 0..{spec.num_labels - 1}")
        y = y.astype(np.int64)
        table = CLASSIFICATION
    unknown = [m for m in spec.metrics if m not in table]
    if unknown:
        raise ValueError(f"{spec.name}: no implementation for metric(s) {unknown}")
    return {name: table[name](y, p) for name in spec.metrics}


__all__ = ["glue_metrics"]
