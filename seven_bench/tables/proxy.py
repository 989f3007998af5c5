"""A study on a stand-in model (e.g. ``model=minilm`` for BERT-base) beside the paper: cells, ranking
agreement, paired differences against SEVEN-pre, and the computed answer. Pure: records and DataFrames in,
DataFrames and strings out; proxy_report writes them.

A paper column is a (task, sparsity) at which the paper prints numbers for the model the stand-in replaces.
The stand-in's numbers are never differenced against the paper's (another model, another scale): only the
orderings of methods are compared.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from seven_bench.tables.aggregate import RECORD_COLUMNS, epoch_values, record_row, usable
from seven_bench.tables.keys import (
    DYNAMIC,
    DYNAMIC_RECIPE,
    OWN_RECIPE,
    changes_trainer,
    column_label,
    is_dense,
    method_label,
    run_variant,
    task_label,
    trainer_setup,
)
from seven_bench.tables.layout import MISSING, format_cell, misses_sparsity
from seven_bench.tables.proxy_answer import (
    DYNAMIC_REFERENCE,
    Comparison,
    answer,
    caveats,
    comparisons,
    missing_for_answer,
    significance_table,
    split_controls,
    still_rising,
    summary_table,
)
from seven_bench.tables.proxy_answer import REFERENCE as REFERENCE
from seven_bench.tables.prune_profile import profile_table
from seven_bench.tables.stats import Agreement, mean_tau, rank_agreement

COLLAPSE = "layer collapse"  # the phrase of seven_bench.pruning.base.collapse_warnings
DAGGER = "†"
OFF_TARGET = "‡"  # the cell's records end at another sparsity than its column's (layout.misses_sparsity)
STILL_RISING = "↑"
NOT_A_PAPER_COLUMN = "not a paper column"
PAPER_MODEL_OF = {"minilm": "bert", "tiny_bert": "bert", "tiny_clip": "clip"}
PAPER_MODEL_NAMES = {"bert": "BERT-base", "clip": "CLIP ViT-B/32"}

CELL_COLUMNS = [
    "model",
    "task",
    "sparsity_pct",
    "variant",
    "column",
    "paper_column",
    "method",
    "label",
    "metric",
    "n",
    "mean",
    "std",
    "seeds",
    "records",
    "collapsed",
    "achieved_pct",
    "steps_before_finetune",
    "finetune_steps",
    "configs",
    "last_epoch_gain",
    "paper",
    "paper_table",
]


def paper_model(model: str) -> str:
    return PAPER_MODEL_OF.get(model, model)


def paper_model_name(model: str) -> str:
    name = paper_model(model)
    return PAPER_MODEL_NAMES.get(name, name)


def collapse_reports(record: Mapping[str, Any]) -> list[str]:
    """The record's warnings that report a fully pruned tensor."""
    return [str(warning) for warning in record.get("warnings") or [] if COLLAPSE in str(warning).lower()]


def proxy_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Successful records as in records.csv, plus ``collapse`` (their layer-collapse warnings, joined),
    ``sparsity_pct``/``standin`` as the paper tables use them, ``recipe`` (keys.trainer_setup) and ``variant``
    (keys.run_variant).

    A dense run is the reference of the pruned runs of its model and task that ran its recipe, so it appears
    once per variant of those (the 3-epoch dense run beside Table II's methods, with the pooler pruned or not;
    a 10-epoch one beside the dynamic methods, a 12-epoch one beside the pruned runs typed `trainer.epochs=12`);
    a dense run whose setup no pruned run shares is left out.
    SEVEN-dyn's own recipe is the same-budget one, so its runs there also stand in the columns where the
    dynamic baselines ran their own papers' recipes ("dynamic, own recipe").
    """
    rows = [
        {
            **record_row(record),
            "collapse": "; ".join(collapse_reports(record)),
            "recipe": trainer_setup((record.get("spec") or {}).get("trainer") or {}),
            "variant": run_variant(record),
        }
        for record in records
    ]
    frame = pd.DataFrame(rows, columns=[*RECORD_COLUMNS, "collapse", "recipe", "variant"])
    for column in ("sparsity_target", "sparsity_achieved", "value_pct", "steps_before_finetune", "finetune_steps"):
        frame[column] = pd.to_numeric(frame[column])
    ok = usable(frame)
    dense = ok["method"].map(is_dense).astype(bool)
    pruned = ok[~dense]
    served = pruned.groupby(["model", "task", "recipe"])["variant"].agg(lambda v: sorted(set(v)))
    runs, variants = [], []
    for index, run in ok[dense].iterrows():
        for variant in served.get((run["model"], run["task"], run["recipe"]), []):
            runs.append(index)
            variants.append(variant)
    own = pruned["variant"].str.endswith(f"{DYNAMIC}, {OWN_RECIPE}")
    own_columns = set(pruned.loc[own, ["model", "task", "variant"]].itertuples(index=False, name=None))
    on_own_recipe = (ok["method"] == DYNAMIC_REFERENCE) & (ok["recipe"] == DYNAMIC_RECIPE)
    for index, run in ok[on_own_recipe].iterrows():
        if (run["model"], run["task"], f"{run['variant']}, {OWN_RECIPE}") in own_columns:
            runs.append(index)
            variants.append(f"{run['variant']}, {OWN_RECIPE}")
    references = ok.loc[runs].assign(variant=variants)
    return pd.concat([pruned, references]).sort_index(kind="stable")


def _paper_lookup(baselines: pd.DataFrame) -> dict[tuple[str, str, float, str], list[tuple[str, float]]]:
    """(model, task, sparsity_pct, method) -> [(table, value)] in the files' order."""
    lookup: dict[tuple[str, str, float, str], list[tuple[str, float]]] = {}
    for row in baselines.itertuples(index=False):
        lookup.setdefault((row.model, row.task, row.sparsity_pct, row.method), []).append((row.table, row.value))
    return lookup


def _paper_columns(baselines: pd.DataFrame, model: str) -> list[tuple[str, float]]:
    paper = baselines[baselines["model"] == model]
    return list(
        dict.fromkeys(
            (task, pct)
            for task, pct, method in zip(paper["task"], paper["sparsity_pct"], paper["method"])
            if not is_dense(method)
        )
    )


def _method_order(baselines: pd.DataFrame, methods: Iterable[str]) -> list[str]:
    """The paper's row order (dense first, as the paper prints it), then other methods by name."""
    rank = {method: index for index, method in enumerate(dict.fromkeys(baselines["method"]))}
    return sorted(set(methods), key=lambda method: (not is_dense(method), rank.get(method, len(rank)), method))


SeedValues = dict[tuple[str, str], dict[int, float]]  # (column, method) -> seed -> value in percent


def _last_epochs(runs: pd.DataFrame) -> pd.DataFrame:
    """Per seed: the metric after the second-to-last and the last epoch, and the gain between them (a seed run
    twice: the mean of its runs; no row for a seed whose runs logged fewer than two epochs)."""
    rows = [
        (seed, values[-2], values[-1])
        for seed, values in zip(runs["seed"], runs["per_epoch_pct"].map(epoch_values))
        if len(values) > 1
    ]
    last = pd.DataFrame(rows, columns=["seed", "before", "last"]).groupby("seed").mean()
    return last.assign(gain=last["last"] - last["before"])


def _cell(runs: pd.DataFrame, published: list[tuple[str, float]]) -> dict[str, Any]:
    """One cell's statistics over seeds, and the paper's number from the table the records feed (Table II's
    SEVEN-pre QNLI@70, not Table IV's), else the first one printed."""
    per_seed = runs.groupby("seed")["value_pct"].mean()
    tables = {key for keys in runs["tables"] for key in keys.split(";") if key}
    table, paper = next((entry for entry in published if entry[0] in tables), next(iter(published), ("", math.nan)))
    return {
        "metric": ";".join(sorted(set(runs["metric"].dropna()))),
        "n": len(per_seed),
        "mean": per_seed.mean(),
        "std": per_seed.std(),
        "seeds": ";".join(str(int(seed)) for seed in per_seed.index),
        "records": len(runs),
        "collapsed": int((runs["collapse"] != "").sum()),
        "achieved_pct": 100 * runs["sparsity_achieved"].mean(),
        "steps_before_finetune": runs["steps_before_finetune"].mean(skipna=False),
        "finetune_steps": runs["finetune_steps"].mean(skipna=False),
        "configs": runs["config_id"].nunique(),
        "last_epoch_gain": _last_epochs(runs)["gain"].mean(),
        "paper": paper,
        "paper_table": table,
    }


def proxy_cells(frame: pd.DataFrame, baselines: pd.DataFrame) -> tuple[pd.DataFrame, SeedValues]:
    """One row per (column, method): ours over seeds beside the paper's number, and each cell's value per seed.

    A seed run twice (two configurations) counts once, as the mean of its runs; ``configs`` > 1 says so.
    The dense row fills every column of its task, as in the paper's tables.
    """
    several_models = frame["model"].nunique() > 1
    lookup = _paper_lookup(baselines)
    keys = ["model", "variant", "task", "sparsity_pct", "method"]
    groups = {key: runs for key, runs in frame.groupby(keys, sort=False)}
    rows: list[dict[str, Any]] = []
    values: SeedValues = {}
    for model in sorted(set(frame["model"])):
        reference = paper_model(model)
        paper_columns = _paper_columns(baselines, reference)
        ours = frame[frame["model"] == model]
        pruned = ours[~ours["method"].map(is_dense).astype(bool)]
        positions = set(zip(pruned["task"], pruned["sparsity_pct"], pruned["variant"]))
        paper_order = {column: index for index, column in enumerate(paper_columns)}
        columns = sorted(  # paper columns in the paper's order, then the others; the study's own set first
            positions,
            key=lambda c: (c[2] != "", (c[0], c[1]) not in paper_order, paper_order.get((c[0], c[1]), 0), c),
        )
        for task, pct, variant in columns:
            printed = (task, pct) in paper_columns and not changes_trainer(variant)
            header = column_label(task, pct) + (f" [{variant}]" if variant else "")
            header += f" [{model}]" if several_models else ""
            present = [
                m
                for (g_model, g_variant, g_task, g_pct, m) in groups
                if (g_model, g_variant, g_task) == (model, variant, task)
                and (g_pct == pct or (is_dense(m) and g_pct == 0.0))
            ]
            for method in _method_order(baselines, present):
                at = 0.0 if is_dense(method) else pct
                runs = groups[(model, variant, task, at, method)]
                values[(header, method)] = {
                    int(seed): float(value) for seed, value in runs.groupby("seed")["value_pct"].mean().items()
                }
                rows.append(
                    {
                        "model": model,
                        "task": task,
                        "sparsity_pct": pct,
                        "variant": variant,
                        "column": header,
                        "paper_column": printed,
                        "method": method,
                        "label": method_label(method),
                        **_cell(runs, lookup.get((reference, task, at, method), []) if printed else []),
                    }
                )
    return pd.DataFrame(rows, columns=CELL_COLUMNS), values


def off_target(cell: Mapping[str, Any]) -> bool:
    """Whether a pruned cell's records end, on average, further from its column's sparsity than the paper tables
    tolerate: Soft-Movement sets its sparsity only through a threshold, so its cell may sit at another sparsity
    than its neighbours, and a reader comparing them must know."""
    return misses_sparsity(cell["method"], cell["achieved_pct"], cell["sparsity_pct"])


def ours_text(cell: Mapping[str, Any]) -> str:
    """``mean ± std (n)``, with a dagger when a record of the cell reports layer collapse, a double dagger
    when its records missed the column's sparsity and an arrow when it was still rising at the recipe's end."""
    marks = (
        (DAGGER if cell["collapsed"] else "")
        + (OFF_TARGET if off_target(cell) else "")
        + (STILL_RISING if still_rising(cell["last_epoch_gain"]) else "")
    )
    return format_cell(cell["mean"], cell["std"], cell["n"]) + marks


def _method_grid(cells: pd.DataFrame, baselines: pd.DataFrame, headers: Sequence[str]) -> pd.DataFrame:
    """An empty methods × columns table (every cell MISSING), the cells' methods in the paper's row order."""
    methods = _method_order(baselines, cells["method"])
    return pd.DataFrame(MISSING, index=pd.Index([method_label(m) for m in methods], name="Method"), columns=headers)


def versus_table(cells: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """Methods as rows, columns as columns; cells ``ours vs paper`` (the paper's number as printed)."""
    headers = list(
        dict.fromkeys(
            column if paper else f"{column} ({NOT_A_PAPER_COLUMN})"
            for column, paper in zip(cells["column"], cells["paper_column"])
        )
    )
    table = _method_grid(cells, baselines, headers)
    for cell in cells.to_dict("records"):
        paper = MISSING if math.isnan(cell["paper"]) else f"{cell['paper']:.2f}"
        if cell["paper_column"]:
            table.loc[cell["label"], cell["column"]] = f"{ours_text(cell)} vs {paper}"
        else:
            table.loc[cell["label"], f"{cell['column']} ({NOT_A_PAPER_COLUMN})"] = ours_text(cell)
    return table


def _steps_text(steps: float) -> str:
    return "?" if math.isnan(steps) else f"{steps:,.0f}"


def budget_table(cells: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """Methods as rows, columns as columns; cells ``steps before the fine-tune + fine-tune steps``: what each
    method trained for its number, since a method that trains on the task before it fixes its mask (a ticket's
    rounds, a search) spends more than one that only scores, and a fair reading of the table weighs that."""
    headers = list(dict.fromkeys(cells["column"]))
    table = _method_grid(cells, baselines, headers)
    for cell in cells.to_dict("records"):
        table.loc[cell["label"], cell["column"]] = (
            f"{_steps_text(cell['steps_before_finetune'])} + {_steps_text(cell['finetune_steps'])}"
        )
    return table


def rank_agreements(cells: pd.DataFrame) -> dict[str, Agreement]:
    """Per paper column: our ordering of the pruning methods (dense left out) against the paper's."""
    agreements = {}
    for column, group in cells[cells["paper_column"].astype(bool)].groupby("column", sort=False):
        pruned = group[~group["method"].map(is_dense).astype(bool)]
        agreements[column] = rank_agreement(
            dict(zip(pruned["method"], pruned["mean"])), dict(zip(pruned["method"], pruned["paper"]))
        )
    return agreements


def _order_text(methods: Sequence[str], values: Mapping[str, float]) -> str:
    return " > ".join(method_label(m) for m in sorted(methods, key=lambda m: -values[m]))


def ranking_table(cells: pd.DataFrame, agreements: Mapping[str, Agreement]) -> pd.DataFrame:
    """Kendall's tau per paper column and the mean over the columns where it is defined."""
    rows = []
    for column, agreement in agreements.items():
        group = cells[cells["column"] == column]
        paper = dict(zip(group["method"], group["paper"]))
        ours = dict(zip(group["method"], group["mean"]))
        rows.append(
            [
                column,
                agreement.n,
                _tau_text(agreement.tau, agreement.n),
                MISSING if math.isnan(agreement.p_value) else f"{agreement.p_value:.3f}",
                _order_text(agreement.methods, ours),
                _order_text(agreement.methods, paper),
            ]
        )
    tau, columns = mean_tau(list(agreements.values()))
    compared = sum(a.n for a in agreements.values() if not math.isnan(a.tau))
    rows.append(
        [f"Mean over {columns} column(s)", compared, MISSING if math.isnan(tau) else f"{tau:+.2f}", MISSING, "", ""]
    )
    table = pd.DataFrame(
        rows, columns=["Column", "Methods compared", "Kendall's tau", "p", "Ours (best first)", "Paper (best first)"]
    )
    return table.set_index("Column")


def _tau_text(tau: float, n: int) -> str:
    if n < 3:
        return f"needs ≥ 3 methods (has {n})"
    return "undefined (ties)" if math.isnan(tau) else f"{tau:+.2f}"


@dataclass
class ProxyView:
    """The stand-in study, ready to render."""

    cells: pd.DataFrame  # CELL_COLUMNS: proxy_cells.csv
    versus: pd.DataFrame
    budget: pd.DataFrame  # budget_table
    ranking: pd.DataFrame
    significance: pd.DataFrame
    summary: pd.DataFrame
    comparisons: list[Comparison]
    answer: list[str]
    missing: list[str]
    caveats: list[str] = field(default_factory=list)  # proxy_answer.caveats: paragraphs under the answer
    footnotes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profile: pd.DataFrame = field(default_factory=pd.DataFrame)  # prune_profile.profile_table
    # The same question for SEVEN-dyn in Table III's ("dynamic") columns; empty when there are none.
    significance_dyn: pd.DataFrame = field(default_factory=pd.DataFrame)
    summary_dyn: pd.DataFrame = field(default_factory=pd.DataFrame)
    comparisons_dyn: list[Comparison] = field(default_factory=list)
    answer_dyn: list[str] = field(default_factory=list)
    missing_dyn: list[str] = field(default_factory=list)
    caveats_dyn: list[str] = field(default_factory=list)
    # SEVEN-pre against its own variants (the mask-resurrection ablation); empty when none ran.
    ablation: pd.DataFrame = field(default_factory=pd.DataFrame)


def _cell_runs(frame: pd.DataFrame, cell: Mapping[str, Any]) -> pd.DataFrame:
    """The records behind one cell (a dense row's runs sit at sparsity 0)."""
    at = 0.0 if is_dense(cell["method"]) else cell["sparsity_pct"]
    return frame[
        (frame["model"] == cell["model"])
        & (frame["variant"] == cell["variant"])
        & (frame["task"] == cell["task"])
        & (frame["sparsity_pct"] == at)
        & (frame["method"] == cell["method"])
    ]


def _footnotes(frame: pd.DataFrame, cells: pd.DataFrame) -> list[str]:
    """One line per marked cell: which seeds' records warned of layer collapse, and the first warning; then
    where the records ended when they missed the column's sparsity, seed by seed."""
    lines = []
    for cell in cells[cells["collapsed"] > 0].to_dict("records"):
        runs = _cell_runs(frame, cell)
        runs = runs[runs["collapse"] != ""]
        seeds = ", ".join(str(seed) for seed in sorted(set(runs["seed"])))
        lines.append(
            f"{DAGGER} {cell['column']}, {cell['label']}: {cell['collapsed']} of {cell['records']} record(s) "
            f"report layer collapse (seed {seeds}): {runs['collapse'].iloc[0].split('; ')[0]}"
        )
    for cell in (cell for cell in cells.to_dict("records") if off_target(cell)):
        per_seed = (100 * _cell_runs(frame, cell).groupby("seed")["sparsity_achieved"].mean()).items()
        achieved = ", ".join(f"seed {int(seed)}: {value:.2f}%" for seed, value in per_seed)
        lines.append(
            f"{OFF_TARGET} {cell['column']}, {cell['label']}: its records end at {cell['achieved_pct']:.2f}% "
            f"sparsity on average ({achieved}), not the column's {cell['sparsity_pct']:g}%: it is "
            f"{'sparser' if cell['achieved_pct'] > cell['sparsity_pct'] else 'denser'} than the column's other cells."
        )
    for cell in (cell for cell in cells.to_dict("records") if still_rising(cell["last_epoch_gain"])):
        last = _last_epochs(_cell_runs(frame, cell))
        per_seed = ", ".join(f"seed {int(row.Index)}: {row.before:.2f} → {row.last:.2f}" for row in last.itertuples())
        lines.append(
            f"{STILL_RISING} {cell['column']}, {cell['label']}: still rising when its recipe ended, the last epoch "
            f"added {cell['last_epoch_gain']:+.2f} points on average ({per_seed}): its number is where training "
            "stopped, not where the method levels out."
        )
    return lines


def _floors(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per task and split, what a model that ignores its input scores (`data_info.constant_prediction`, written by
    the data loader): the floor that tells a cell which learned the task from one that only learned the label
    prior. Records that do not carry it (older runs) are passed over; records that disagree each get a line."""
    found: Counter[tuple[str, str, tuple[tuple[str, Any], ...]]] = Counter()
    for record in records:
        info, metrics = record.get("data_info") or {}, record.get("metrics") or {}
        split = str(metrics.get("reported_split"))
        floor = (info.get("constant_prediction") or {}).get(split)
        if record.get("status") == "ok" and floor:
            # The metric the tables report comes first, so the floor reads beside the cells it bounds.
            items = sorted(floor.items(), key=lambda item: item[0] != metrics.get("reported_metric"))
            found[(record["spec"]["task"]["name"], split, tuple(items))] += 1
    values_per_split = Counter(key[:2] for key in found)
    lines = []
    for (task, split, items), count in sorted(found.items(), key=lambda item: (item[0][:2], -item[1])):
        floor = dict(items)
        scores = ", ".join(f"{name} {100 * value:.2f}" for name, value in floor.items() if name != "label")
        what = "a constant" if floor.get("label") is None else f"label {floor['label']}"
        many = f" ({count} record{'s' if count > 1 else ''})" if values_per_split[(task, split)] > 1 else ""
        lines.append(
            f"{task_label(task)} ({split}){many}: predicting {what} for every example scores {scores}. A cell near "
            "this floor learned little beyond the label prior."
        )
    return lines


def _notes(cells: pd.DataFrame) -> list[str]:
    return [
        f"{cell['column']}, {cell['label']}: mixes {cell['configs']} configurations (runs differing in more than "
        f"the seed); a seed run twice counts once, as the mean of its runs."
        for cell in cells[cells["configs"] > 1].to_dict("records")
    ]


def build_proxy(records: Iterable[Mapping[str, Any]], baselines: pd.DataFrame) -> ProxyView:
    """Lay out the whole study from plain records and the baselines, without touching files."""
    records = list(records)
    frame = proxy_frame(records)
    cells, values = proxy_cells(frame, baselines)
    found = comparisons(cells, values)
    counted, controls = split_controls(cells, found)
    return ProxyView(
        cells=cells,
        versus=versus_table(cells, baselines),
        budget=budget_table(cells, baselines),
        ranking=ranking_table(cells, rank_agreements(cells)),
        significance=significance_table(found),
        summary=summary_table(counted),
        comparisons=found,
        answer=answer(counted),
        missing=missing_for_answer(cells, counted),
        caveats=caveats(cells, counted, controls),
        footnotes=_footnotes(frame, cells) + _floors(records),
        notes=_notes(cells),
        profile=profile_table(records, cells),
        ablation=significance_table(comparisons(cells, values, ablations=True)),
        **_dynamic_answer(cells, values),
    )


def _dynamic_answer(cells: pd.DataFrame, values: SeedValues) -> dict[str, Any]:
    """SEVEN-dyn against the other dynamic methods, where Table III's columns have records."""
    dynamic = cells[cells["variant"].str.contains(DYNAMIC)] if len(cells) else cells
    if dynamic.empty:
        return {}
    found = comparisons(dynamic, values, DYNAMIC_REFERENCE)
    counted, controls = split_controls(dynamic, found)
    return {
        "significance_dyn": significance_table(found, DYNAMIC_REFERENCE),
        "summary_dyn": summary_table(counted, DYNAMIC_REFERENCE),
        "comparisons_dyn": found,
        "answer_dyn": answer(counted, DYNAMIC_REFERENCE),
        "missing_dyn": missing_for_answer(dynamic, counted, DYNAMIC_REFERENCE),
        "caveats_dyn": caveats(dynamic, counted, controls, DYNAMIC_REFERENCE),
    }
