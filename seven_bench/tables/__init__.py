"""Collate run records into the paper's tables, next to the published numbers.

The run records (``<results_dir>/runs/*/record.json``) and ``baselines/table<N>.csv`` are the only inputs.
The outputs are the paper's tables laid out as printed (methods as rows, ``TASK@sparsity`` as columns, cells
``mean ± std (n)`` over seeds), a side-by-side comparison with the paper, a long-form ``records.csv`` and
metric-vs-sparsity plots. ``--proxy`` instead reports a study on a stand-in model (proxy_report).

One module per job, none importing this package's ``__init__``:

- ``keys``: which table and row a record fills, and the paper's labels (pure, per record);
- ``aggregate``: records as a DataFrame and the statistics over seeds (pure);
- ``layout``: a table as printed, with its missing cells and notes (pure);
- ``render``: Markdown and LaTeX strings, and the one writer of table files;
- ``load``: reading the records and baselines; ``plots``: the figures; ``cli``: ``main``;
- ``stats``, ``proxy``, ``proxy_report``: the stand-in study's statistics, tables and README.

Only ``load_*``, ``write_*``, ``plot_*`` and ``main`` touch files. The package imports neither torch nor the
training stack (only ``seven_bench.errors`` and ``seven_bench.records``), so tables can be built on a machine
without one.
"""

from seven_bench.records import SCHEMA_VERSION
from seven_bench.tables.aggregate import (
    AGGREGATE_COLUMNS,
    AGGREGATE_KEYS,
    RECORD_COLUMNS,
    aggregate,
    record_row,
    records_frame,
)
from seven_bench.tables.cli import main
from seven_bench.tables.keys import (
    DENSE,
    IMAGE_MODELS,
    LION_SUFFIX,
    METHOD_LABELS,
    PAPER_MODELS,
    SEVEN_PRE_DEFAULTS,
    TABLE_METHOD_LABELS,
    TASK_LABELS,
    TEXT_MODELS,
    column_label,
    method_key,
    method_label,
    row_label,
    table_keys,
    task_label,
)
from seven_bench.tables.layout import (
    MISSING,
    SPARSITY_TOLERANCE_PCT,
    TABLE_NOTES,
    TABLE_TITLES,
    TableView,
    build_table,
    format_cell,
    format_versus,
    table_names,
)
from seven_bench.tables.load import BASELINE_COLUMNS, default_baselines_dir, load_baselines, load_records
from seven_bench.tables.plots import plot_schedules, plot_sparsity_curves
from seven_bench.tables.render import (
    latex_escape,
    latex_table,
    markdown_table,
    missing_lines,
    render_markdown,
    render_versus_markdown,
    write_table,
)

__all__ = [
    "AGGREGATE_COLUMNS",
    "AGGREGATE_KEYS",
    "BASELINE_COLUMNS",
    "DENSE",
    "IMAGE_MODELS",
    "LION_SUFFIX",
    "METHOD_LABELS",
    "MISSING",
    "PAPER_MODELS",
    "RECORD_COLUMNS",
    "SCHEMA_VERSION",
    "SEVEN_PRE_DEFAULTS",
    "SPARSITY_TOLERANCE_PCT",
    "TABLE_METHOD_LABELS",
    "TABLE_NOTES",
    "TABLE_TITLES",
    "TASK_LABELS",
    "TEXT_MODELS",
    "TableView",
    "aggregate",
    "build_table",
    "column_label",
    "default_baselines_dir",
    "format_cell",
    "format_versus",
    "latex_escape",
    "latex_table",
    "load_baselines",
    "load_records",
    "main",
    "markdown_table",
    "method_key",
    "method_label",
    "missing_lines",
    "plot_schedules",
    "plot_sparsity_curves",
    "record_row",
    "records_frame",
    "render_markdown",
    "render_versus_markdown",
    "row_label",
    "table_keys",
    "table_names",
    "task_label",
    "write_table",
]
