"""`make demo`: a shortened Table II cell, offline, on the bundled MiniLM and the real RTE data.

Three cells at sparsity 0.6 (dense, one-shot magnitude, SEVEN-pre) with fewer scoring batches and
training steps than the paper's recipe, so it finishes in a few minutes on two CPU cores. The full cell
is `seven-bench model=minilm task=rte pruner=seven_pre sparsity=0.6`.
"""

from __future__ import annotations

import sys
import time

from hydra import compose, initialize_config_dir
from rich.console import Console
from rich.table import Table

from seven_bench.cli import CONF_DIR
from seven_bench.errors import UserError
from seven_bench.run import run_cell
from seven_bench.spec import build_spec

RESULTS = "results/demo"
SHORT = ["model=minilm", "task=rte", "sparsity=0.6", "trainer.max_steps=12", "progress=true"]
CELLS = {"dense": [], "magnitude": [], "seven_pre": ["pruner.num_batches=8"]}


def main() -> None:
    console = Console()
    console.print(f"[bold]seven-bench demo[/]: MiniLM on RTE at sparsity 0.6, shortened recipe "
                  f"(records in {RESULTS}/; rerunning reuses finished cells)")
    rows = []
    started = time.perf_counter()
    for pruner, extra in CELLS.items():
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            cfg = compose(config_name="config", overrides=[*SHORT, f"pruner={pruner}", *extra])
        try:
            spec = build_spec(cfg)
        except UserError as err:
            console.print(f"seven-bench demo: error: {err}")
            sys.exit(2)
        console.print(f"cell {spec.cell_hash}: pruner={pruner}")
        rows.append((pruner, run_cell(spec, RESULTS, progress=True)))

    table = Table(title="RTE dev accuracy, MiniLM, 12 fine-tuning steps (the paper trains 3 epochs = 234 steps: accuracy here is near chance)")
    for col in ("pruner", "target sparsity", "achieved", "accuracy", "prune s", "train s", "status"):
        table.add_column(col, justify="right" if col != "pruner" else "left")
    for pruner, rec in rows:
        metrics, sp, timing = rec.get("metrics", {}), rec.get("sparsity", {}), rec.get("timing", {})
        value = metrics.get("reported_value")
        table.add_row(pruner, f"{sp.get('target', 0):.3f}", f"{sp.get('achieved', float('nan')):.3f}",
                      "–" if value is None else f"{100 * value:.1f}", f"{timing.get('prune_seconds', 0):.1f}",
                      f"{timing.get('train_seconds', 0):.1f}", rec.get("status", "?"))
    console.print(table)
    console.print(f"done in {time.perf_counter() - started:.0f} s; `seven-bench-tables --results-dir {RESULTS}` lays these records out as the paper's Table II")
    if any(rec.get("status") != "ok" for _, rec in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
