"""SEVEN Fig. 4 (pre-pruning on the larger datasets) from the records of `+experiment=fig4` and `fig4_imagenet`:
metric vs sparsity, one panel per dataset (per model and dataset, a stand-in model titled as such), one line per
method (mean ± std over seeds), written as fig4.png and fig4.pdf beside fig4.csv, the numbers plotted.

The paper's figure has no published numbers, so nothing is overlaid. A SQuAD run on the dev file split by article
(`task.proxy_split=by_article`, task key `squad_proxy`) gets its own panel, labelled as the stand-in it is, never
pooled with real SQuAD."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import matplotlib
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from seven_bench.tables.aggregate import joined, records_frame, usable
from seven_bench.tables.keys import PAPER_MODELS, is_dense, method_label, task_label
from seven_bench.tables.plots import stable_metadata

EXPERIMENT = "fig4"
PANEL_ORDER = ("mnli", "qqp", "squad", "squad_proxy", "imagenet")
# The paper's legend order: the baselines, then SEVEN-pre; ID (BERT only) last among the baselines.
METHOD_ORDER = ("random", "magnitude", "snip", "grasp", "iter_snip", "force", "info_deletion", "seven_pre")
CSV_COLUMNS = [
    "model",
    "task",
    "panel",
    "method",
    "label",
    "sparsity_pct",
    "metric",
    "n",
    "mean",
    "std",
    "achieved_pct",
]


def fig4_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The usable records tagged fig4, with the panel each belongs to (its model and task key: a stand-in split
    such as `squad_proxy` is a task of its own)."""
    frame = usable(records_frame(records))
    tagged = frame["tables"].str.split(";").map(lambda tags: EXPERIMENT in tags).astype(bool)
    frame = frame[tagged].copy()
    frame["panel"] = [_panel_title(model, task) for model, task in zip(frame["model"], frame["task"])]
    return frame


def _panel_title(model: str, task: str) -> str:
    return f"{model}: {task_label(task)}" + ("" if model in PAPER_MODELS else " [stand-in]")


def _panel_key(model: str, task: str) -> tuple[int, str, str]:
    rank = PANEL_ORDER.index(task) if task in PANEL_ORDER else len(PANEL_ORDER)
    return (rank, task, model)


def _method_key(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)


def fig4_points(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std over seeds per panel, method and sparsity (a seed run twice counts once)."""
    if frame.empty:
        return pd.DataFrame(columns=CSV_COLUMNS)
    keys = ["model", "task", "panel", "method", "sparsity_pct"]
    per_seed = frame.groupby([*keys, "seed"], sort=False).agg(
        value=("value_pct", "mean"), achieved=("sparsity_achieved", "mean"), metric=("metric", joined)
    )
    stats = per_seed.groupby(keys, sort=False).agg(
        n=("value", "size"),
        mean=("value", "mean"),
        std=("value", "std"),
        achieved_pct=("achieved", lambda a: 100 * a.mean()),
        metric=("metric", joined),
    )
    points = stats.reset_index()
    points["label"] = points["method"].map(method_label)
    order = points.apply(
        lambda r: (_panel_key(r["model"], r["task"]), _method_key(r["method"]), r["sparsity_pct"]),
        axis=1,
    )
    points = points.loc[order.sort_values().index].reset_index(drop=True)
    return points[CSV_COLUMNS]


def plot_fig4(records: Iterable[Mapping[str, Any]], plots_dir: Path) -> list[Path]:
    """fig4.{png,pdf} and fig4.csv in plots_dir; nothing (an empty list) when no record is tagged fig4."""
    frame = fig4_frame(records)
    if frame.empty:
        return []
    points = fig4_points(frame)
    plots_dir.mkdir(parents=True, exist_ok=True)
    csv = plots_dir / "fig4.csv"
    points.to_csv(csv, index=False, float_format="%.4f")
    panels = list(dict.fromkeys(points["panel"]))
    methods = sorted(set(points["method"]), key=_method_key)
    palette = matplotlib.colormaps["tab10"]
    colors = {method: palette(index % palette.N) for index, method in enumerate(methods)}
    figure = Figure(figsize=(4.2 * len(panels), 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes_row = figure.subplots(1, len(panels), squeeze=False)[0]
    for axes, panel in zip(axes_row, panels):
        rows = points[points["panel"] == panel]
        for method in sorted(set(rows["method"]), key=_method_key):
            curve = rows[rows["method"] == method].sort_values("sparsity_pct")
            if is_dense(method):  # one level for every sparsity
                axes.axhline(curve["mean"].iloc[0], color="grey", linestyle=":", label=method_label(method))
                continue
            axes.errorbar(
                curve["sparsity_pct"],
                curve["mean"],
                yerr=curve["std"].fillna(0.0),
                color=colors[method],
                marker="o",
                markersize=4,
                capsize=2,
                label=method_label(method),
            )
        axes.set(xlabel="sparsity (%)", ylabel=f"{joined(rows['metric']) or 'metric'} (%)", title=panel)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="x-small")
    written = [csv]
    for suffix in ("png", "pdf"):
        path = plots_dir / f"fig4.{suffix}"
        figure.savefig(path, dpi=150, metadata=stable_metadata(path))
        written.append(path)
    return written
