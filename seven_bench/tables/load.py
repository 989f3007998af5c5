"""The two inputs of the tables tool: the run records and the paper's numbers in baselines/table<N>.csv."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from seven_bench.errors import UserError
from seven_bench.records import SCHEMA_VERSION
from seven_bench.tables.keys import table_order

BASELINE_COLUMNS = ["table", "model", "task", "method", "sparsity", "metric", "value"]


def default_baselines_dir() -> Path:
    """The repository's baselines/ folder, beside the package (present in a source checkout)."""
    return Path(__file__).resolve().parents[2] / "baselines"


def load_baselines(directory: Path) -> pd.DataFrame:
    """All ``table*.csv`` in a folder, in file and row order (which is the paper's order)."""
    paths = sorted(directory.glob("table*.csv"), key=lambda path: table_order(path.stem))
    if not paths:
        raise UserError(f"no baselines (table*.csv) in {directory}: run from a source checkout or pass --baselines DIR")
    frames = []
    for path in paths:
        frame = pd.read_csv(path)
        if list(frame.columns) != BASELINE_COLUMNS:
            raise UserError(f"{path}: columns must be {','.join(BASELINE_COLUMNS)}")
        frames.append(frame)
    baselines = pd.concat(frames, ignore_index=True)
    baselines["sparsity_pct"] = (baselines["sparsity"] * 100).round(2)
    return baselines


_REQUIRED_FIELDS = (("spec", "model", "name"), ("spec", "task", "name"), ("spec", "pruner", "name"), ("status",))


def _lacks(record: Mapping[str, Any], path: Sequence[str]) -> bool:
    node: Any = record
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return True
        node = node[part]
    return False


def load_records(results_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every ``runs/*/record.json`` that parses and has the fields tables need, plus why others were skipped.

    A broken file is reported rather than fatal, so one bad record does not hide all the others.
    """
    runs = results_dir / "runs"
    if not runs.is_dir():
        raise UserError(f"no run records: {runs} does not exist (run some cells, or pass --results-dir)")
    records, skipped = [], []
    for path in sorted(runs.glob("*/record.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            skipped.append(f"{path}: unreadable ({error})")
            continue
        if not isinstance(record, dict) or record.get("schema_version") != SCHEMA_VERSION:
            skipped.append(f"{path}: not a schema_version {SCHEMA_VERSION} run record")
            continue
        lacking = [".".join(fields) for fields in _REQUIRED_FIELDS if _lacks(record, fields)]
        if lacking:
            skipped.append(f"{path}: lacks {', '.join(lacking)}")
            continue
        records.append(record)
    return records, skipped
