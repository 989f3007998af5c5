"""GLUE metrics against values worked out by hand, including the undefined (0/0) cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seven_bench.tasks.metrics import (
    accuracy,
    constant_prediction,
    f1_binary,
    glue_metrics,
    matthews_corrcoef,
    pearson,
    spearman,
)

# tp=3 fp=1 fn=1 tn=3
SYM_PRED = np.array([1, 1, 1, 0, 0, 0, 1, 0])
SYM_GOLD = np.array([1, 1, 0, 0, 0, 1, 1, 0])
# tp=2 fp=1 fn=2 tn=5
ASYM_PRED = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
ASYM_GOLD = np.array([1, 1, 0, 1, 1, 0, 0, 0, 0, 0])

pytestmark = pytest.mark.filterwarnings("error")  # no NaN/constant-input warnings either


def test_accuracy() -> None:
    assert accuracy(SYM_PRED, SYM_GOLD) == 0.75
    assert accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])) == 0.75


def test_f1_by_hand() -> None:
    assert f1_binary(SYM_PRED, SYM_GOLD) == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    assert f1_binary(ASYM_PRED, ASYM_GOLD) == pytest.approx(4 / 7)


def test_f1_positive_class_is_one() -> None:
    # Swapping the classes changes F1: tp=5 fp=2 fn=1 for class 0 would give 10/13, not 4/7.
    assert f1_binary(1 - ASYM_PRED, 1 - ASYM_GOLD) == pytest.approx(10 / 13)


def test_mcc_by_hand() -> None:
    assert matthews_corrcoef(SYM_PRED, SYM_GOLD) == pytest.approx((9 - 1) / 16)
    expected = (2 * 5 - 1 * 2) / math.sqrt((2 + 1) * (2 + 2) * (5 + 1) * (5 + 2))
    assert matthews_corrcoef(ASYM_PRED, ASYM_GOLD) == pytest.approx(expected)
    assert matthews_corrcoef(SYM_GOLD, SYM_GOLD) == pytest.approx(1.0)
    assert matthews_corrcoef(1 - SYM_GOLD, SYM_GOLD) == pytest.approx(-1.0)


def test_pearson_by_hand() -> None:
    # x-mean = (-1, 0, 1), y-mean = (-4/3, -1/3, 5/3): cov 3, sxx 2, syy 42/9
    assert pearson(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0])) == pytest.approx(3 / math.sqrt(2 * 42 / 9))


def test_spearman_by_hand() -> None:
    # rank differences (0, -1, 1, 0): 1 - 6 * 2 / (4 * 15)
    assert spearman(np.array([1, 2, 3, 4]), np.array([1, 3, 2, 4])) == pytest.approx(0.8)
    # ties get averaged ranks (1, 2.5, 2.5, 4): cov 4.5, var 4.5 and 5
    assert spearman(np.array([1, 2, 2, 3]), np.array([1, 2, 3, 4])) == pytest.approx(math.sqrt(0.9))
    # monotone but not linear
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0])) == pytest.approx(1.0)


def test_degenerate_cases_are_zero_not_nan() -> None:
    constant = np.zeros(8, dtype=int)
    assert matthews_corrcoef(constant, SYM_GOLD) == 0.0
    assert matthews_corrcoef(np.ones(8, dtype=int), SYM_GOLD) == 0.0
    assert f1_binary(constant, constant) == 0.0  # no positive predicted, none to find
    assert f1_binary(constant, SYM_GOLD) == 0.0
    flat = np.full(4, 2.5)
    scores = np.array([0.0, 1.0, 3.0, 5.0])
    assert pearson(flat, scores) == 0.0 and pearson(scores, flat) == 0.0
    assert spearman(flat, scores) == 0.0 and spearman(scores, flat) == 0.0
    assert pearson(np.array([1.0]), np.array([2.0])) == 0.0


def test_glue_metrics_keys_per_task() -> None:
    keys = {
        "cola": {"mcc"},
        "sst2": {"accuracy"},
        "rte": {"accuracy"},
        "wnli": {"accuracy"},
        "qnli": {"accuracy"},
        "mnli": {"accuracy"},
        "mrpc": {"f1", "accuracy"},
        "qqp": {"f1", "accuracy"},
        "stsb": {"pearson", "spearman"},
    }
    for task, expected in keys.items():
        result = glue_metrics(task, SYM_PRED, SYM_GOLD)
        assert set(result) == expected, task
        assert all(isinstance(v, float) for v in result.values())
    assert glue_metrics("mrpc", ASYM_PRED, ASYM_GOLD) == pytest.approx({"f1": 4 / 7, "accuracy": 0.7})


def test_regression_head_shape_is_flattened() -> None:
    preds = np.array([[1.0], [2.0], [3.0]])
    result = glue_metrics("stsb", preds, np.array([1.0, 2.0, 4.0]))
    assert result["spearman"] == pytest.approx(1.0)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError):
        accuracy(np.array([1, 0]), np.array([1, 0, 1]))
    with pytest.raises(ValueError):
        accuracy(np.array([]), np.array([]))
    with pytest.raises(ValueError):
        glue_metrics("squad", SYM_PRED, SYM_GOLD)


def test_constant_prediction_picks_the_best_single_label_by_hand() -> None:
    # 3 of 5 labels are 1: all-1 scores accuracy 3/5, F1 2*3/(5+3) = 0.75; all-0 scores 2/5 and F1 0.
    labels = np.array([1, 0, 1, 1, 0])
    assert constant_prediction("mrpc", labels, "accuracy") == {"label": 1, "f1": 0.75, "accuracy": 0.6}
    # CoLA: every constant has MCC 0, so the tie keeps the lower label.
    assert constant_prediction("cola", labels, "mcc") == {"label": 0, "mcc": 0.0}
    # A 3-class split where the majority is label 2.
    assert constant_prediction("mnli", np.array([2, 2, 0, 1, 2]), "accuracy") == {"label": 2, "accuracy": 0.6}
    # Regression: a constant has no correlation with anything (scored 0.0, not NaN).
    scores = np.array([0.5, 4.0, 2.5], dtype=np.float32)
    assert constant_prediction("stsb", scores, "pearson") == {"label": None, "pearson": 0.0, "spearman": 0.0}
    with pytest.raises(ValueError, match="no examples"):
        constant_prediction("mrpc", np.array([], dtype=np.int64), "accuracy")
