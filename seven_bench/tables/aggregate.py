"""Records as a DataFrame (records.csv) and the statistics over seeds: pure functions of plain records."""

from __future__ import annotations

import hashlib
import math
from typing import Any, Callable, Iterable, Mapping

import pandas as pd

from seven_bench.records import setup_key
from seven_bench.tables.keys import PAPER_MODELS, SECONDARY_METRICS, is_dense, method_key, table_keys, task_key

RECORD_COLUMNS = [
    "hash",
    "status",
    "error",
    "failed_at_step",
    "experiment",
    "tables",
    "model",
    "task",
    "pruner",
    "timing",
    "method",
    "sparsity_target",
    "sparsity_achieved",
    "seed",
    "metric",
    "split",
    "value_pct",
    "best_pct",
    "per_epoch_pct",
    "prune_seconds",
    "train_seconds",
    "steps_before_finetune",
    "finetune_steps",
    "optimizer",
    "lr",
    "epochs",
    "batch_size",
    "config_id",
    "git_commit",
    "created_at",
    "collapse_warnings",
    "secondary_metric",
    "secondary_pct",
]

AGGREGATE_KEYS = ["table", "method", "standin", "task", "sparsity_pct"]
AGGREGATE_COLUMNS = AGGREGATE_KEYS + [
    "n",
    "mean",
    "std",
    "metric",
    "achieved_pct",
    "configs",
    "collapsed",
    "secondary_metric",
    "secondary_mean",
]


def _pct(value: Any) -> float:
    return math.nan if value is None else 100.0 * float(value)


def _config_id(spec: Mapping[str, Any]) -> str:
    """Short hash of the spec's identity without its seed: records with equal ids differ only in the seed (or in
    settings that do not change a result, such as the checkpoint cadence)."""
    return hashlib.sha1(setup_key(spec).encode()).hexdigest()[:8]


# Records written before `timing.steps_before_finetune` existed: the steps their pruner summary gives for the
# methods that train before the fine-tune. The other methods that do (LEGACY_UNKNOWN) read as unknown, not 0.
def _ticket_rounds(summary: Mapping[str, Any]) -> Any:
    return summary["round_used"] * summary["round_steps"]


def _search(summary: Mapping[str, Any]) -> Any:
    return summary["search_steps"]


LEGACY_STEPS_BEFORE_FINETUNE: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "lth": _ticket_rounds,
    "lth_rewind": _ticket_rounds,
    "isp": _search,
    "earlybird": _search,
}
LEGACY_UNKNOWN = frozenset({"lottery_pool", "dsp", "spp", "info_deletion"})


def steps_before_finetune(record: Mapping[str, Any]) -> float:
    """The optimizer steps the cell's method took before its fine-tune (`Pruner.steps_before_finetune`), NaN where
    a record cannot say (a failed run, or an older record of a method that trains first and wrote no count)."""
    timing = record.get("timing") or {}
    if timing.get("steps_before_finetune") is not None:
        return float(timing["steps_before_finetune"])
    name = record["spec"]["pruner"]["name"]
    if name in LEGACY_STEPS_BEFORE_FINETUNE:
        try:
            return float(LEGACY_STEPS_BEFORE_FINETUNE[name](record.get("pruner") or {}))
        except (KeyError, TypeError):
            return math.nan
    return math.nan if name in LEGACY_UNKNOWN or record.get("status") != "ok" else 0.0


def epoch_values(per_epoch_pct: Any) -> list[float]:
    """A row's ``per_epoch_pct`` ("61.61;67.76") back as numbers, epochs without a value left out."""
    return [float(value) for value in str(per_epoch_pct or "").split(";") if value not in ("", "nan")]


def record_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One record flattened to the columns of records.csv (metric values in percent, sparsity as fractions)."""
    spec = record["spec"]
    pruner, trainer = spec["pruner"], spec.get("trainer") or {}
    metrics = record.get("metrics") or {}
    split, metric = metrics.get("reported_split"), metrics.get("reported_metric")
    per_epoch = [_pct((entry.get(split) or {}).get(metric)) for entry in metrics.get("per_epoch") or []]
    sparsity = record.get("sparsity") or {}
    timing = record.get("timing") or {}
    secondary = SECONDARY_METRICS.get(spec["task"]["name"], (None, ""))[0]
    last = (metrics.get("per_epoch") or [{}])[-1].get(split) or {}
    return {
        "hash": record.get("cell_hash"),
        "status": record.get("status"),
        "error": record.get("error"),
        "failed_at_step": record.get("failed_at_step"),
        "experiment": record.get("experiment"),
        "tables": ";".join(table_keys(record)),
        "model": spec["model"]["name"],
        "task": task_key(spec["task"]),
        "pruner": pruner["name"],
        "timing": pruner.get("timing"),
        "method": method_key(record),
        "sparsity_target": sparsity.get("target", spec.get("sparsity")),
        "sparsity_achieved": sparsity.get("achieved"),
        "seed": spec.get("seed"),
        "metric": metric,
        "split": split,
        "value_pct": _pct(metrics.get("reported_value")),
        "best_pct": _pct(metrics.get("best_value")),
        "per_epoch_pct": ";".join(f"{value:.2f}" for value in per_epoch),
        "prune_seconds": timing.get("prune_seconds"),
        "train_seconds": timing.get("train_seconds"),
        "steps_before_finetune": steps_before_finetune(record),
        "finetune_steps": timing.get("steps"),
        "optimizer": trainer.get("optimizer"),
        "lr": trainer.get("lr"),
        "epochs": trainer.get("epochs"),
        "batch_size": trainer.get("batch_size"),
        "config_id": _config_id(spec),
        "git_commit": (record.get("env") or {}).get("git_commit"),
        "created_at": record.get("created_at"),
        "collapse_warnings": sum("(layer collapse)" in str(w) for w in record.get("warnings") or []),
        "secondary_metric": secondary,
        "secondary_pct": _pct(last.get(secondary)) if secondary else math.nan,
    }


def records_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """All records, one row each (failed ones included), sorted for reading; this is records.csv."""
    frame = pd.DataFrame([record_row(record) for record in records], columns=RECORD_COLUMNS)
    for column in ("sparsity_target", "sparsity_achieved", "value_pct", "best_pct", "secondary_pct"):
        frame[column] = pd.to_numeric(frame[column])
    return frame.sort_values(["model", "task", "method", "sparsity_target", "seed"], kind="stable", ignore_index=True)


def usable(frame: pd.DataFrame) -> pd.DataFrame:
    """Successful records with a value, plus the column position (dense -> 0) and the stand-in model.

    Failed records are left out here, so they never enter a mean; records.csv still lists them.
    """
    ok = frame[(frame["status"] == "ok") & frame["value_pct"].notna()].copy()
    dense = ok["method"].map(is_dense).astype(bool)
    ok["sparsity_pct"] = (ok["sparsity_target"] * 100).round(2).where(~dense, 0.0)
    ok["standin"] = ok["model"].where(~ok["model"].isin(PAPER_MODELS), "")
    return ok


def joined(values: pd.Series) -> str:
    """The distinct values, sorted and joined with ``;`` (missing ones left out)."""
    return ";".join(sorted({str(value) for value in values.dropna()}))


def aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std (ddof 1; NaN for one seed) and count over seeds, per table, row and column.

    A record that feeds two tables (dense BERT: II and III) counts in each. ``configs`` lists the distinct
    ``config_id`` values: more than one means the cell mixes runs that differ in more than the seed.
    """
    ok = usable(frame)
    ok["table"] = ok["tables"].str.split(";")
    ok = ok.explode("table")
    ok = ok[ok["table"].notna() & (ok["table"] != "")]
    if ok.empty:
        return pd.DataFrame(columns=AGGREGATE_COLUMNS)
    ok["achieved_pct"] = ok["sparsity_achieved"] * 100
    grouped = ok.groupby(AGGREGATE_KEYS, sort=False)
    result = grouped.agg(
        n=("value_pct", "size"),
        mean=("value_pct", "mean"),
        std=("value_pct", "std"),
        metric=("metric", joined),
        achieved_pct=("achieved_pct", "mean"),
        configs=("config_id", joined),
        collapsed=("collapse_warnings", lambda c: int((c > 0).sum())),
        secondary_metric=("secondary_metric", joined),
        secondary_mean=("secondary_pct", "mean"),
    )
    return result.reset_index()[AGGREGATE_COLUMNS]
