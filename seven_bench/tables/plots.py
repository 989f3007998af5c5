"""Metric-vs-sparsity curves and dynamic schedules, drawn on an Agg canvas without pyplot, so plotting neither
needs a display nor changes the caller's matplotlib backend."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from seven_bench.tables.aggregate import epoch_values, joined, usable
from seven_bench.tables.keys import is_dense, method_label, task_label


def stable_metadata(path: Path) -> dict[str, Any] | None:
    """No creation date in a PDF, so regenerating a plot from the same records gives the same bytes."""
    return {"CreationDate": None} if str(path).endswith(".pdf") else None


def plot_sparsity_curves(frame: pd.DataFrame, baselines: pd.DataFrame, plots_dir: Path) -> list[Path]:
    """sparsity_curve_<model>_<task>.{png,pdf}: our metric vs sparsity per method (mean ± std over seeds).

    The paper's numbers for the same model and task are hollow markers in the method's colour; a stand-in
    model gets none, since the paper has no numbers for it.
    """
    ok = usable(frame)
    written: list[Path] = []
    if ok.empty:
        return written
    plots_dir.mkdir(parents=True, exist_ok=True)
    for (model, task), runs in ok.groupby(["model", "task"], sort=True):
        stats = runs.groupby(["method", "sparsity_pct"])["value_pct"].agg(["mean", "std"])
        methods = list(dict.fromkeys(runs.sort_values("method")["method"]))
        paper = baselines[(baselines["model"] == model) & (baselines["task"] == task)]
        palette = matplotlib.colormaps["tab10" if len(methods) <= 10 else "tab20"]
        figure = Figure(figsize=(6.4, 4.4), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        handles = []
        for index, method in enumerate(methods):
            color = palette(index % palette.N)
            curve = stats.loc[method].sort_index()
            handles.append(
                axes.errorbar(
                    curve.index,
                    curve["mean"],
                    yerr=curve["std"].fillna(0.0),
                    color=color,
                    marker="o",
                    capsize=3,
                    label=method_label(method),
                )
            )
            if is_dense(method):  # the dense level as a reference line across all sparsities
                axes.axhline(curve["mean"].iloc[0], color=color, linestyle=":", linewidth=1)
            published = paper[paper["method"] == method].drop_duplicates(["sparsity_pct", "value"])
            axes.plot(
                published["sparsity_pct"],
                published["value"],
                linestyle="none",
                marker="o",
                markersize=10,
                markerfacecolor="none",
                markeredgecolor=color,
            )
        if not paper[paper["method"].isin(methods)].empty:
            handles.append(
                Line2D(
                    [],
                    [],
                    linestyle="none",
                    marker="o",
                    markersize=10,
                    markerfacecolor="none",
                    markeredgecolor="black",
                    label="paper",
                )
            )
        metric = joined(runs["metric"]) or "metric"
        axes.set(xlabel="sparsity (%)", ylabel=f"{metric} (%)", title=f"{model}: {task_label(task)}")
        axes.grid(alpha=0.3)
        axes.legend(handles=handles, fontsize="small")
        for suffix in ("png", "pdf"):
            path = plots_dir / f"sparsity_curve_{model}_{task}.{suffix}"
            figure.savefig(path, dpi=150, metadata=stable_metadata(path))
            written.append(path)
    return written


def plot_schedules(records: Sequence[dict[str, Any]], plots_dir: Path) -> list[Path]:
    """schedule_<model>_<task>_<pruner>_<hash>.png: target vs achieved sparsity per step of each dynamic
    run, so a window cut short by the step budget (RTE, STS-B) or an indirect method missing its
    target (soft movement) is visible at a glance rather than only as a warning string."""
    written: list[Path] = []
    for record in records:
        trajectory = (record.get("pruner") or {}).get("trajectory") or []
        if record.get("status") != "ok" or not trajectory:
            continue
        spec = record["spec"]
        steps = [point["step"] for point in trajectory]
        figure = Figure(figsize=(6.4, 4.0), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        for key, label, style in (("target_keep", "target (schedule)", "-"), ("achieved_keep", "achieved", "--")):
            points = [(step, 1.0 - point[key]) for step, point in zip(steps, trajectory) if point.get(key) is not None]
            if points:  # soft movement has no scheduled target, only what its penalty reached
                axes.plot(*zip(*points), linestyle=style, label=label)
        axes.axhline(spec["sparsity"], color="grey", linestyle=":", linewidth=1, label="final target")
        name = spec["pruner"]["name"]
        axes.set(
            xlabel="training step",
            ylabel="sparsity",
            ylim=(0.0, 1.0),
            title=f"{spec['model']['name']}: {task_label(spec['task']['name'])}, {name} @ {spec['sparsity']:.2f}",
        )
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
        plots_dir.mkdir(parents=True, exist_ok=True)
        path = plots_dir / f"schedule_{spec['model']['name']}_{spec['task']['name']}_{name}_{record['cell_hash']}.png"
        figure.savefig(path, dpi=120, metadata=stable_metadata(path))
        written.append(path)
    return written


def _file_tag(variant: str) -> str:
    """A column's variant as a file-name suffix: "dynamic, own recipe" -> "_dynamic-own-recipe", so names carry
    no commas or spaces that shells and Markdown links trip over."""
    slug = re.sub(r"[^0-9A-Za-z]+", "-", variant).strip("-")
    return f"_{slug}" if slug else ""


def plot_proxy_curves(frame: pd.DataFrame, plots_dir: Path, model_names: Mapping[str, str] | None = None) -> list[Path]:
    """proxy_curve_<model>_<task>.{png,pdf}: metric vs sparsity, one line per method, a mean ± std band over
    seeds (a seed run twice counts once), dense as a dotted level, and an ``x`` where a record reports layer
    collapse. ``frame`` is a proxy frame (seven_bench.tables.proxy.proxy_frame): usable records plus ``collapse``;
    ``model_names`` titles a model (e.g. ``minilm (stand-in for BERT-base)``).
    """
    written: list[Path] = []
    if frame.empty:
        return written
    plots_dir.mkdir(parents=True, exist_ok=True)
    for (model, task, variant), runs in frame.groupby(["model", "task", "variant"], sort=True):
        per_seed = runs.groupby(["method", "sparsity_pct", "seed"])["value_pct"].mean()
        stats = per_seed.groupby(["method", "sparsity_pct"]).agg(["mean", "std"])
        flagged = runs[runs["collapse"] != ""]
        collapsed = set(zip(flagged["method"], flagged["sparsity_pct"]))
        methods = sorted(set(runs["method"]))
        palette = matplotlib.colormaps["tab10" if len(methods) <= 10 else "tab20"]
        figure = Figure(figsize=(6.4, 4.4), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        for index, method in enumerate(methods):
            color = palette(index % palette.N)
            curve = stats.loc[method].sort_index()
            low, high = curve["mean"] - curve["std"].fillna(0.0), curve["mean"] + curve["std"].fillna(0.0)
            if is_dense(method):  # one level for every sparsity
                axes.axhline(curve["mean"].iloc[0], color=color, linestyle=":", label=method_label(method))
                axes.axhspan(low.iloc[0], high.iloc[0], color=color, alpha=0.1, linewidth=0)
                continue
            axes.errorbar(
                curve.index,
                curve["mean"],
                yerr=curve["std"].fillna(0.0),
                color=color,
                marker="o",
                capsize=3,
                label=method_label(method),
            )  # the bar shows a lone point's spread
            axes.fill_between(curve.index, low, high, color=color, alpha=0.2, linewidth=0)
            marked = [pct for pct in curve.index if (method, pct) in collapsed]
            axes.plot(marked, curve.loc[marked, "mean"], linestyle="none", marker="x", markersize=10, color="black")
        if collapsed:
            axes.plot([], [], linestyle="none", marker="x", markersize=10, color="black", label="layer collapse")
        metric = joined(runs["metric"]) or "metric"
        title = f"{(model_names or {}).get(model, model)}: {task_label(task)}" + (f" ({variant})" if variant else "")
        axes.set(xlabel="sparsity (%)", ylabel=f"{metric} (%)", title=title)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
        for suffix in ("png", "pdf"):
            path = plots_dir / f"proxy_curve_{model}_{task}{_file_tag(variant)}.{suffix}"
            figure.savefig(path, dpi=150, metadata=stable_metadata(path))
            written.append(path)
    return written


def epoch_trajectories(frame: pd.DataFrame) -> pd.DataFrame:
    """Long form of each run's dev metric after every epoch: model, task, sparsity_pct and variant (the column),
    method, seed, epoch, value_pct. Dense runs are repeated in every pruned column of their task, as the reference.

    Why: a final number alone cannot say whether a method has converged within its recipe or is still
    climbing when training stops, which is what decides whether a longer recipe would reorder the methods.
    """
    columns = ["model", "task", "sparsity_pct", "variant", "method", "seed", "epoch", "value_pct"]
    rows = []
    for run in frame.itertuples(index=False):
        values = epoch_values(run.per_epoch_pct)
        rows += [
            (run.model, run.task, run.sparsity_pct, run.variant, run.method, run.seed, epoch, value)
            for epoch, value in enumerate(values, start=1)
        ]
    long = pd.DataFrame(rows, columns=columns)
    dense = long["method"].map(is_dense).astype(bool) if len(long) else pd.Series(dtype=bool)
    pruned, reference = long[~dense], long[dense]
    positions = pruned[["model", "task", "sparsity_pct", "variant"]].drop_duplicates()
    spread = [
        reference[
            (reference["model"] == model) & (reference["task"] == task) & (reference["variant"] == variant)
        ].assign(sparsity_pct=pct)
        for model, task, pct, variant in positions.itertuples(index=False)
    ]
    together = pd.concat([pruned, *spread], ignore_index=True) if spread else pruned
    return together.sort_values(columns[:7], kind="stable", ignore_index=True)


def plot_epoch_trajectories(
    frame: pd.DataFrame, plots_dir: Path, model_names: Mapping[str, str] | None = None
) -> list[Path]:
    """proxy_epochs_<model>_<task>_<sparsity>.{png,pdf}: dev metric after each epoch, one colour per method, a
    thin line per seed and a bold line for the mean over seeds (epochs where every seed has a value), dense
    dotted. ``frame`` is a proxy frame (seven_bench.tables.proxy.proxy_frame)."""
    long = epoch_trajectories(frame)
    written: list[Path] = []
    if long.empty:
        return written
    plots_dir.mkdir(parents=True, exist_ok=True)
    for (model, task, pct, variant), runs in long.groupby(["model", "task", "sparsity_pct", "variant"], sort=True):
        methods = sorted(set(runs["method"]), key=lambda method: (not is_dense(method), method))
        palette = matplotlib.colormaps["tab10" if len(methods) <= 10 else "tab20"]
        figure = Figure(figsize=(6.4, 4.4), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        for index, method in enumerate(methods):
            color, style = palette(index % palette.N), ":" if is_dense(method) else "-"
            own = runs[runs["method"] == method]
            seeds = own.pivot_table(index="epoch", columns="seed", values="value_pct", aggfunc="mean")
            for seed in seeds.columns:
                axes.plot(seeds.index, seeds[seed], color=color, linestyle=style, linewidth=0.8, alpha=0.5)
            mean = seeds.dropna().mean(axis=1)
            axes.plot(
                mean.index,
                mean,
                color=color,
                linestyle=style,
                linewidth=2.2,
                marker="o",
                markersize=4,
                label=f"{method_label(method)} ({len(seeds.columns)} seed{'s' if len(seeds.columns) > 1 else ''})",
            )
        metric = joined(frame[(frame["model"] == model) & (frame["task"] == task)]["metric"]) or "metric"
        title = f"{(model_names or {}).get(model, model)}: {task_label(task)} at {pct:g}% sparsity"
        title += f" ({variant})" if variant else ""
        axes.set(xlabel="epoch", ylabel=f"dev {metric} (%)", title=title)
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="x-small", ncols=2 if len(methods) > 6 else 1)
        for suffix in ("png", "pdf"):
            path = plots_dir / f"proxy_epochs_{model}_{task}_{pct:g}{_file_tag(variant)}.{suffix}"
            figure.savefig(path, dpi=150, metadata=stable_metadata(path))
            written.append(path)
    return written
