"""GLUE metrics, computed once over a whole evaluation split.

Averaging per-batch values would be wrong for F1, MCC and the correlations, so every function here
takes the full prediction and label arrays. Values are fractions, never percent. Where a metric is
undefined (constant predictions or labels make MCC and the correlations 0/0) it is reported as 0.0,
so a collapsed pruned model reads as "no signal" in the tables instead of poisoning them with NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats
from sklearn import metrics as skm


def _pair(preds: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays flattened (regression heads give shape (n, 1)) and checked to match."""
    p = np.asarray(preds).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if p.shape != y.shape:
        raise ValueError(f"{p.size} predictions for {y.size} labels")
    if p.size == 0:
        raise ValueError("no examples to score")
    return p, y


def accuracy(preds: np.ndarray, labels: np.ndarray) -> float:
    p, y = _pair(preds, labels)
    return float(skm.accuracy_score(y, p))


def f1_binary(preds: np.ndarray, labels: np.ndarray) -> float:
    """F1 of class 1; 0.0 when there is no positive prediction and no positive label."""
    p, y = _pair(preds, labels)
    return float(skm.f1_score(y, p, pos_label=1, labels=[0, 1], zero_division=0.0))


def matthews_corrcoef(preds: np.ndarray, labels: np.ndarray) -> float:
    """Matthews correlation; scikit-learn already reports 0.0 when a confusion margin is empty."""
    p, y = _pair(preds, labels)
    return float(skm.matthews_corrcoef(y, p))


def _correlation(statistic, preds: np.ndarray, labels: np.ndarray) -> float:
    """A scipy correlation, 0.0 where either side is constant (scipy would warn and return NaN)."""
    p, y = _pair(preds, labels)
    p, y = p.astype(np.float64), y.astype(np.float64)
    if p.size < 2 or np.ptp(p) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(statistic(p, y)[0])


def pearson(preds: np.ndarray, labels: np.ndarray) -> float:
    return _correlation(stats.pearsonr, preds, labels)


def spearman(preds: np.ndarray, labels: np.ndarray) -> float:
    return _correlation(stats.spearmanr, preds, labels)


def glue_metrics(task: str, preds: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The metrics GLUE defines for `task` on one split (argmax ids, or scores for stsb)."""
    if task == "cola":
        return {"mcc": matthews_corrcoef(preds, labels)}
    if task in ("mrpc", "qqp"):
        return {"f1": f1_binary(preds, labels), "accuracy": accuracy(preds, labels)}
    if task == "stsb":
        return {"pearson": pearson(preds, labels), "spearman": spearman(preds, labels)}
    if task in ("sst2", "mnli", "qnli", "rte", "wnli"):
        return {"accuracy": accuracy(preds, labels)}
    raise ValueError(f"no GLUE metrics for task '{task}'")


def constant_prediction(task: str, labels: np.ndarray, reported_metric: str) -> dict[str, Any]:
    """The best score a model that ignores its input can get on a split: one prediction for every example.

    Classification tries each label and keeps the one with the highest `reported_metric` (MRPC's dev: label 1,
    accuracy 68.4); regression predicts the label mean, whose correlations are undefined and scored 0.0 as above.
    The tables set a pruned cell beside this floor: near it, fine-tuning learned only the label prior.
    """
    y = np.asarray(labels).reshape(-1)
    if y.size == 0:
        raise ValueError("no examples to score")
    if np.issubdtype(y.dtype, np.floating):
        return {"label": None, **glue_metrics(task, np.full(y.shape, float(y.mean())), y)}
    best: dict[str, Any] = {}
    for label in sorted(int(c) for c in np.unique(y)):  # ascending: a tie keeps the lower label
        scores = glue_metrics(task, np.full(y.shape, label), y)
        if not best or scores[reported_metric] > best[reported_metric]:
            best = {"label": label, **scores}
    return best
