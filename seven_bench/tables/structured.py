"""The structured table (`+experiment=structured`): accuracy, exported size and measured speed-up per method
at equal parameter sparsity, laid out like the paper's tables (methods x task@sparsity).

A column is a (model, task, parameter sparsity in whole percent) group; DSP's own sparsity counts heads, so it
goes by the fraction of weights its removed heads held and lands beside the methods cut to the same weights.
Each column shows three numbers: the reported metric (mean ± std (n) over seeds), the exported file in MiB
(the sliced model; for unstructured masks the compressed file) and the speed-up of the exported model over
the dense one (median latency at the batch and length the record states). The dense row fills every column
of its model and task.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from seven_bench.tables.keys import task_key, task_label
from seven_bench.tables.layout import MISSING, format_cell
from seven_bench.tables.render import latex_table, markdown_table

KEY = "structured"
SELECTION_LABELS = {"head": "heads", "structured": "heads + neurons", "global": "unstructured"}
METHOD_LABELS = {"dense": "Dense", "dsp": "DSP (heads)", "spp": "SPP (q-k, v dims + neurons)"}
METHOD_NAMES = {"magnitude": "Magnitude", "snip": "SNIP", "seven_pre": "SEVEN-pre"}
ROW_ORDER = ("Dense", "DSP", "SPP", "SEVEN-pre", "Magnitude", "SNIP")


def row_label(record: Mapping[str, Any]) -> str:
    """`DSP (heads)`, `SEVEN-pre (heads + neurons)`, `Magnitude (unstructured)`, ..."""
    pruner = record["spec"]["pruner"]
    name = "dense" if pruner.get("timing") == "none" else str(pruner["name"])
    if name in METHOD_LABELS:
        return METHOD_LABELS[name]
    selection = str(pruner.get("selection", "global"))
    return f"{METHOD_NAMES.get(name, name)} ({SELECTION_LABELS.get(selection, selection)})"


def _row_rank(label: str) -> tuple[int, bool, str]:
    head = next((i for i, prefix in enumerate(ROW_ORDER) if label.startswith(prefix)), len(ROW_ORDER))
    return head, "unstructured" in label, label


def record_facts(record: Mapping[str, Any]) -> dict[str, Any]:
    """One record's numbers for the table: metric (percent), parameter sparsity, exported size, speed-up."""
    spec, export = record["spec"], record.get("export") or {}
    metrics, sparsity = record.get("metrics") or {}, record.get("sparsity") or {}
    value = metrics.get("reported_value")
    size = export.get("compressed_file_bytes") or export.get("exported_file_bytes")  # the smaller one kept
    latency = export.get("latency") or {}
    # DSP's own sparsity counts heads: its column is the fraction of weights its heads hold (the achieved one)
    dsp = spec["pruner"].get("name") == "dsp" and sparsity.get("achieved") is not None
    fraction = float(sparsity["achieved"] if dsp else spec.get("sparsity", 0.0))
    return {
        "row": row_label(record),
        "model": spec["model"]["name"],
        "task": task_key(spec["task"]),
        "seed": spec.get("seed"),
        "dense": spec["pruner"].get("timing") == "none",
        "sparsity_pct": round(100.0 * fraction),
        "value_pct": math.nan if value is None else 100.0 * float(value),
        "metric": metrics.get("reported_metric"),
        "size_mib": math.nan if not size else size / 2**20,
        "speedup": latency.get("speedup", math.nan),
        "latency_at": f"batch {latency['batch_size']} x {latency['seq_len']} tokens, {latency['device']}"
        if latency
        else "",
    }


def _mean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return statistics.fmean(kept) if kept else math.nan


def build_structured(records: Sequence[Mapping[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the table: rows x `TASK@sparsity acc | MiB | speed-up` columns, long form with one row per cell)."""
    facts = [
        record_facts(r)
        for r in records
        if r.get("status") == "ok" and KEY in (r.get("experiments") or [r.get("experiment")])
    ]
    frame = pd.DataFrame(facts)
    if frame.empty:
        return pd.DataFrame(), frame
    sparse = frame[~frame["dense"]]
    columns = sorted({(m, t, s) for m, t, s in zip(sparse["model"], sparse["task"], sparse["sparsity_pct"])})
    long_rows: list[dict[str, Any]] = []
    for model, task, pct in columns:
        here = frame[
            (frame["model"] == model) & (frame["task"] == task) & ((frame["sparsity_pct"] == pct) | frame["dense"])
        ]
        for row, cell in here.groupby("row"):
            values = [v for v in cell["value_pct"] if not math.isnan(v)]
            long_rows.append(
                {
                    "row": row,
                    "model": model,
                    "task": task,
                    "sparsity_pct": pct,
                    "column": f"{task_label(task)}@{pct:g} ({model})",
                    "mean": _mean(values),
                    "std": statistics.stdev(values) if len(values) > 1 else math.nan,
                    "n": len(values),
                    "size_mib": _mean(list(cell["size_mib"])),
                    "speedup": _mean(list(cell["speedup"])),
                    "latency_at": next((s for s in cell["latency_at"] if s), ""),
                }
            )
    long = pd.DataFrame(long_rows)
    rows = sorted(set(long["row"]), key=_row_rank)
    table = pd.DataFrame(index=pd.Index(rows, name="Method"))
    for column in dict.fromkeys(long["column"]):
        part = long[long["column"] == column].set_index("row")
        for suffix, render in (
            ("", lambda c: format_cell(c["mean"], c["std"], int(c["n"]))),
            (" MiB", lambda c: MISSING if math.isnan(c["size_mib"]) else f"{c['size_mib']:.1f}"),
            (" speed-up", lambda c: MISSING if math.isnan(c["speedup"]) else f"{c['speedup']:.2f}x"),
        ):
            table[column + suffix] = [render(part.loc[r]) if r in part.index else MISSING for r in rows]
    return table, long


def write_structured(records: Sequence[Mapping[str, Any]], out_dir: Path) -> str:
    """structured.{md,tex,csv} (+ structured_long.csv); returns the line the tables CLI prints."""
    table, long = build_structured(records)
    if table.empty:
        return f"{KEY}: no complete record yet (seven-bench -m +experiment=structured)"
    out_dir.mkdir(parents=True, exist_ok=True)
    title = "Structured pruning at equal parameter sparsity: accuracy, exported size, speed-up over dense"
    at = sorted({s for s in long["latency_at"] if s})
    notes = [
        f"Columns: task@parameter sparsity (%); per method the reported metric (mean ± std (n) over seeds), the "
        f"exported file (MiB) and the exported model's speed-up over the dense one ({'; '.join(at) or 'no timing'}).",
        "Unstructured rows keep the dense shapes (their file is the compressed one): no speed-up is expected.",
    ]
    (out_dir / f"{KEY}.md").write_text(f"# {title}\n\n" + markdown_table(table) + "\n" + "\n".join(notes) + "\n")
    (out_dir / f"{KEY}.tex").write_text(latex_table(table, title, f"tab:seven-bench-{KEY}"))
    table.to_csv(out_dir / f"{KEY}.csv")
    long.to_csv(out_dir / f"{KEY}_long.csv", index=False)
    return f"{KEY}: {len(table)} methods x {long['column'].nunique()} column(s) -> {out_dir / KEY}.md"
