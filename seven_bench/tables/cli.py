"""``seven-bench-tables``: read the records and baselines, write tables, records.csv and plots, print what is
missing. ``--proxy`` writes the stand-in study's report instead (seven_bench.tables.proxy_report)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from seven_bench.errors import UserError
from seven_bench.tables.aggregate import records_frame
from seven_bench.tables.fig4 import plot_fig4
from seven_bench.tables.layout import build_table, table_names
from seven_bench.tables.load import default_baselines_dir, load_baselines, load_records
from seven_bench.tables.plots import plot_schedules, plot_sparsity_curves
from seven_bench.tables.render import missing_lines, write_table
from seven_bench.tables.structured import KEY as STRUCTURED
from seven_bench.tables.structured import write_structured


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="seven-bench-tables",
        description="Collate run records into the SEVEN paper's tables, beside the published numbers.",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=Path("results"),
        help="folder holding runs/<cell_hash>/record.json (default: results)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where tables and records.csv go (default: <results-dir>/tables)"
    )
    parser.add_argument(
        "--plots", type=Path, default=None, help="where the sparsity curves go (default: <results-dir>/plots)"
    )
    parser.add_argument(
        "--baselines",
        type=Path,
        default=None,
        help="folder with the paper's table*.csv (default: the repository's baselines/)",
    )
    parser.add_argument(
        "--proxy",
        action="store_true",
        help="the records are a study on a stand-in model (e.g. results/proxy): write its "
        "proxy_* tables, curves and <results-dir>/README.md instead of the paper's tables",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """``seven-bench-tables``: write tables, records.csv and plots; print what is missing and any caveats."""
    args = _parse_args(argv)
    out_dir = args.out or args.results_dir / "tables"
    plots_dir = args.plots or args.results_dir / "plots"
    try:
        baselines = load_baselines(args.baselines or default_baselines_dir())
        records, skipped = load_records(args.results_dir)
    except UserError as error:
        print(f"seven-bench-tables: {error}", file=sys.stderr)
        return 2
    if args.proxy:
        from seven_bench.tables.proxy_report import write_proxy_report  # scipy only loads for the proxy

        return write_proxy_report(records, skipped, baselines, args.results_dir, out_dir, plots_dir)

    frame = records_frame(records)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_dir / "records.csv", index=False)
    failed = int((frame["status"] != "ok").sum())
    print(f"{len(frame)} run records ({failed} failed) from {args.results_dir / 'runs'}")
    for reason in skipped:
        print(f"  skipped {reason}")
    orphans = frame[frame["tables"] == ""]
    if not orphans.empty:
        print(f"  {len(orphans)} record(s) fit no table (e.g. {orphans['hash'].iloc[0]}); see records.csv")

    for key in table_names(frame, baselines):
        if key == STRUCTURED:  # its own layout: accuracy, size and speed-up per method (tables/structured.py)
            print(write_structured(records, out_dir))
            continue
        view = build_table(key, frame, baselines)
        write_table(view, out_dir)
        paper_cells = int((baselines["table"] == key).sum())
        if paper_cells:
            filled = paper_cells - len(view.missing)
            print(f"{key}: {filled}/{paper_cells} paper cells filled -> {out_dir / key}.md")
        else:
            print(f"{key}: no paper numbers to compare with -> {out_dir / key}.md")
        for line in missing_lines(view):
            print(f"  missing {line}")
        for note in view.notes:
            print(f"  note: {note}")
    plots = plot_sparsity_curves(frame, baselines, plots_dir)
    schedules = plot_schedules(records, plots_dir)
    fig4 = plot_fig4(records, plots_dir)  # Fig. 4 (records of +experiment=fig4 / fig4_imagenet), with fig4.csv
    if fig4:
        print(f"fig4 -> {fig4[1]} (plotted numbers: {fig4[0]})")
    print(
        f"records -> {out_dir / 'records.csv'}; {len(plots) // 2} sparsity plot(s), {len(schedules)} schedule plot(s) "
        f"-> {plots_dir}"
    )
    return 0
