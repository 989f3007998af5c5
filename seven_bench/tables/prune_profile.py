"""Where each method puts its sparsity: the pruned fraction per kind of weight (query, key, value, attention
output, FFN in, FFN out, pooler), read from the records' per-tensor sparsity.

Why: two methods at the same global sparsity can remove very different weights, and that, more than the
global number, explains why one fine-tunes back and the other does not (on MiniLM the gradient saliencies
empty query and key far more than value and FFN, magnitude the reverse). Pure: records in, DataFrames out.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

import pandas as pd

from seven_bench.tables.aggregate import record_row
from seven_bench.tables.keys import is_dense, method_label, run_variant

# (role, pattern on the parameter name), first match wins: BERT names, then open_clip's ViT names.
ROLES: tuple[tuple[str, str], ...] = (
    ("query", r"attention\.self\.query\."),
    ("key", r"attention\.self\.key\."),
    ("value", r"attention\.self\.value\."),
    ("attention QKV", r"\.in_proj_weight$"),
    ("attention output", r"(attention\.output\.dense|attn\.out_proj)\."),
    ("FFN in", r"(intermediate\.dense|mlp\.c_fc)\."),
    ("FFN out", r"(\.output\.dense|mlp\.c_proj)\."),
    ("pooler", r"pooler\."),
)
OTHER = "other"


def weight_role(name: str) -> str:
    """The kind of weight a parameter name denotes (``other`` when no pattern matches)."""
    return next((role for role, pattern in ROLES if re.search(pattern, name)), OTHER)


def role_sparsity(per_layer: Mapping[str, float]) -> dict[str, float]:
    """Per role, the mean pruned fraction over its tensors, in percent. Tensors of one role have one shape in
    a transformer (every layer's query is d x d), so this mean equals the role's pruned share of its weights."""
    grouped: dict[str, list[float]] = {}
    for name, fraction in per_layer.items():
        grouped.setdefault(weight_role(name), []).append(float(fraction))
    return {role: 100.0 * sum(values) / len(values) for role, values in grouped.items()}


def profile_rows(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per successful pruned record with per-tensor sparsity: model, task, sparsity_pct, method, seed,
    and one column per role present."""
    rows = []
    for record in records:
        per_layer = (record.get("sparsity") or {}).get("per_layer") or {}
        if record.get("status") != "ok" or not per_layer:
            continue
        row = record_row(record)
        if is_dense(row["method"]):
            continue
        rows.append(
            {
                "model": row["model"],
                "task": row["task"],
                "sparsity_pct": round(100.0 * float(row["sparsity_target"]), 2),
                "variant": run_variant(record),
                "method": row["method"],
                "seed": row["seed"],
                **role_sparsity(per_layer),
            }
        )
    return pd.DataFrame(rows)


def profile_table(records: Iterable[Mapping[str, Any]], cells: pd.DataFrame) -> pd.DataFrame:
    """(Column, Method) rows in the order of the proxy cells, roles as columns: the pruned percentage of each
    kind of weight, mean over seeds (per-seed masks of one method differ only through its scoring batches)."""
    rows = profile_rows(records)
    if rows.empty or cells.empty:
        return pd.DataFrame()
    keys = ["model", "task", "sparsity_pct", "variant", "method"]
    roles = [role for role, _ in ROLES if role in rows.columns] + ([OTHER] if OTHER in rows.columns else [])
    means = rows.groupby(keys)[roles].mean()
    seeds = rows.groupby(keys)["seed"].nunique()
    table = []
    for cell in cells.to_dict("records"):
        key = (cell["model"], cell["task"], cell["sparsity_pct"], cell["variant"], cell["method"])
        if key not in means.index:
            continue
        shares = means.loc[key]
        table.append(
            {
                "Column": cell["column"],
                "Method": method_label(cell["method"]),
                "Seeds": int(seeds.loc[key]),
                **{role: "–" if pd.isna(shares[role]) else f"{shares[role]:.1f}" for role in roles},
            }
        )
    return pd.DataFrame(table).set_index("Column") if table else pd.DataFrame()
