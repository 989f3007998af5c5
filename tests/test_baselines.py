"""The transcribed paper numbers (baselines/*.csv): shape, keys, and spot values against the paper's text.

A transcription slip would make every comparison in `make tables` wrong, so the counts pin the paper's
layout and the spot values (plus the gains the paper's text claims) pin individual numbers.
"""

from __future__ import annotations

import pandas as pd
import pytest

from seven_bench.tables import BASELINE_COLUMNS, METHOD_LABELS, default_baselines_dir, load_baselines

IMAGE_TASKS = {"mnist", "svhn", "gtsrb", "cifar10", "cifar100"}
# As the suite's GLUE tasks report them (BERT-Tickets' Table 1; MRPC accuracy, see baselines/README.md).
GLUE_METRICS = {
    "stsb": "pearson",
    "cola": "mcc",
    "mrpc": "accuracy",
    "qqp": "accuracy",
    "mnli": "accuracy",
    "wnli": "accuracy",
    "qnli": "accuracy",
    "rte": "accuracy",
    "sst2": "accuracy",
}


@pytest.fixture(scope="module")
def baselines() -> pd.DataFrame:
    return load_baselines(default_baselines_dir())


def value(baselines: pd.DataFrame, table: str, method: str, task: str, sparsity: float) -> float:
    hit = baselines[
        (baselines["table"] == table)
        & (baselines["method"] == method)
        & (baselines["task"] == task)
        & ((baselines["sparsity"] - sparsity).abs() < 1e-9)
    ]
    assert len(hit) == 1, (table, method, task, sparsity, len(hit))
    return float(hit["value"].iloc[0])


@pytest.mark.parametrize(
    "table, rows, methods, dense",
    [
        ("table1", 155, 10, 5),  # 10 methods x 15 columns + the dense line over 5 tasks
        ("table2", 63, 8, 7),  # 8 x 7 + Full BERT-base
        ("table3", 40, 4, 8),  # 4 x 8 + Full BERT-base
        ("table4", 24, 4, 0),  # 3 stripped variants + SEVEN-pre, 6 columns, no dense line
        ("table5", 20, 3, 5),  # Lottery Ticket, EarlyBird, SEVEN-pre-Lion x 5 + Full BERT-base
    ],
)
def test_row_counts(baselines: pd.DataFrame, table: str, rows: int, methods: int, dense: int) -> None:
    part = baselines[baselines["table"] == table]
    assert len(part) == rows
    assert part.loc[part["method"] != "dense", "method"].nunique() == methods
    assert (part["method"] == "dense").sum() == dense
    assert not part.duplicated(["model", "task", "method", "sparsity"]).any()


def test_files_are_tidy(baselines: pd.DataFrame) -> None:
    for path in sorted(default_baselines_dir().glob("table*.csv")):
        frame = pd.read_csv(path)
        assert list(frame.columns) == BASELINE_COLUMNS
        assert set(frame["table"]) == {path.stem}
    assert set(baselines["method"]) <= set(METHOD_LABELS)
    assert baselines["value"].between(0, 100).all()
    assert baselines["sparsity"].between(0, 1).all()
    dense = baselines["method"] == "dense"
    assert (baselines.loc[dense, "sparsity"] == 0).all() and (baselines.loc[~dense, "sparsity"] > 0).all()


def test_models_and_metrics(baselines: pd.DataFrame) -> None:
    image = baselines["task"].isin(IMAGE_TASKS)
    assert (baselines.loc[image, "model"] == "clip").all()
    assert (baselines.loc[image, "metric"] == "top1").all()
    assert (baselines.loc[~image, "model"] == "bert").all()
    text = baselines[~image]
    assert (text["metric"] == text["task"].map(GLUE_METRICS)).all()
    assert set(baselines.loc[baselines["table"] == "table1", "model"]) == {"clip"}


def test_column_order_is_the_papers(baselines: pd.DataFrame) -> None:
    """The tables tool takes the printed column order from the row order of these files."""

    def columns(table: str) -> list[tuple[str, float]]:
        part = baselines[(baselines["table"] == table) & (baselines["method"] != "dense")]
        return list(dict.fromkeys(zip(part["task"], part["sparsity"])))

    assert columns("table2") == [
        ("stsb", 0.5),
        ("wnli", 0.9),
        ("qnli", 0.7),
        ("mrpc", 0.5),
        ("rte", 0.6),
        ("sst2", 0.6),
        ("cola", 0.5),
    ]
    assert columns("table4") == [
        ("cifar10", 0.7),
        ("cifar100", 0.7),
        ("qnli", 0.7),
        ("cifar10", 0.6),
        ("cifar100", 0.6),
        ("sst2", 0.6),
    ]
    assert columns("table1")[:4] == [("mnist", 0.7), ("mnist", 0.8), ("mnist", 0.9), ("svhn", 0.7)]


@pytest.mark.parametrize(
    "table, method, task, sparsity, expected",
    [
        ("table1", "seven_pre", "cifar10", 0.8, 90.61),
        ("table1", "dense", "cifar100", 0.0, 89.35),
        ("table1", "random", "cifar100", 0.8, 43.24),
        ("table1", "lth_rewind", "svhn", 0.9, 87.47),
        ("table1", "gmp", "gtsrb", 0.5, 98.97),
        ("table2", "seven_pre", "rte", 0.6, 70.5),
        ("table2", "random", "stsb", 0.5, 21.0),
        ("table2", "isp", "qnli", 0.7, 90.0),
        ("table2", "dense", "cola", 0.0, 58.3),
        ("table3", "platon", "stsb", 0.5, 90.19),
        ("table3", "soft_movement", "rte", 0.6, 72.92),
        ("table3", "dense", "qqp", 0.0, 91.1),
        ("table3", "seven_dyn", "mnli", 0.7, 83.34),
        ("table4", "seven_pre_variant_a", "cifar10", 0.7, 93.53),
        ("table4", "seven_pre_variant_c", "cifar100", 0.6, 77.44),
        ("table4", "seven_pre", "qnli", 0.7, 89.8),  # Table II prints 90.5: the paper's own inconsistency
        ("table4", "seven_pre", "cifar100", 0.6, 85.70),  # printed "CIFAR10*"
        ("table5", "seven_pre_lion", "rte", 0.6, 66.3),
        ("table5", "lth", "cola", 0.5, 53.8),
    ],
)
def test_spot_values(
    baselines: pd.DataFrame, table: str, method: str, task: str, sparsity: float, expected: float
) -> None:
    assert value(baselines, table, method, task, sparsity) == pytest.approx(expected)


@pytest.mark.parametrize(
    "table, task, sparsity, better, worse, gain",
    [
        ("table1", "cifar10", 0.8, "seven_pre", "lth_rewind", 3.33),
        ("table1", "cifar100", 0.8, "seven_pre", "lth_rewind", 3.21),
        ("table1", "svhn", 0.9, "seven_pre", "lth_rewind", 6.42),
        ("table3", "mrpc", 0.5, "seven_dyn", "platon", 1.22),
    ],
)
def test_gains_claimed_in_the_text(
    baselines: pd.DataFrame, table: str, task: str, sparsity: float, better: str, worse: str, gain: float
) -> None:
    difference = value(baselines, table, better, task, sparsity) - value(baselines, table, worse, task, sparsity)
    assert difference == pytest.approx(gain, abs=1e-9)


def test_inconsistencies_kept_as_printed(baselines: pd.DataFrame) -> None:
    # Table IV's "CIFAR10*" equals Table I's CIFAR100@60, which is why it is recorded as cifar100.
    assert value(baselines, "table4", "seven_pre", "cifar100", 0.6) == value(
        baselines, "table1", "seven_pre", "cifar100", 0.6
    )
    assert value(baselines, "table4", "seven_pre", "qnli", 0.7) != value(baselines, "table2", "seven_pre", "qnli", 0.7)
    # Table V's non-Lion rows are Table II's numbers.
    for method in ("dense", "lth", "earlybird"):
        table5 = baselines[(baselines["table"] == "table5") & (baselines["method"] == method)]
        for row in table5.itertuples():
            assert row.value == value(baselines, "table2", method, row.task, row.sparsity)
