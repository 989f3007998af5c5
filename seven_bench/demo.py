"""`make demo`: a shortened Table II cell, offline, on the bundled MiniLM and the real STS-B data.

STS-B, because MiniLM (a sentence-embedding model) learns it within a minute of fine-tuning and pruners
visibly differ on it at the paper's sparsity (on RTE everything stays at chance). Three cells at sparsity 0.5
(dense, one-shot magnitude, SEVEN-pre), pooler kept dense as in the proxy study, with fewer scoring batches
and training steps (at a higher learning rate) than the paper's recipe, so it finishes in under five minutes
on two CPU cores. Beside each
number: what the full recipe gave in the committed proxy study (results/proxy/), when it has that cell.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from seven_bench.conf import compose_config
from seven_bench.errors import UserError
from seven_bench.records import load_record, setup_key
from seven_bench.run import run_cell
from seven_bench.spec import build_spec

RESULTS = "results/demo"
STEPS = 60
# 60 steps at 5x the paper's learning rate: enough for the dense model to learn STS-B (Pearson ~64 on 500 dev
# pairs) within about a minute a cell on 2 cores; the paper's 2e-5 needs its full 540 steps.
CELL = ["model=minilm", "task=stsb", "sparsity=0.5", "model.prune_pooler=false"]
SHORT = [
    *CELL,
    f"trainer.max_steps={STEPS}",
    "trainer.lr=1e-4",
    "task.max_eval_examples=500",
    "progress=true",
]
PROXY = Path("results/proxy/runs")
# Each pruner's settings beyond CELL: shortenings only (SEVEN-pre's fewer scoring batches), left out of full_recipe.
CELLS = {"dense": [], "magnitude": [], "seven_pre": ["pruner.num_batches=8"]}


def full_recipe(pruner: str, runs: Path = PROXY) -> str:
    """Mean (n seeds) of the committed proxy study's records of the demo's cell on the paper's recipe: the
    same setup as the demo's cell without its shortening (every seed of it), so that a variant of the method
    (`pruner.resurrection=true`) or a longer budget control (`trainer.epochs=10`) never enters the number."""
    key = setup_key(build_spec(compose_config([*CELL, f"pruner={pruner}"])).to_dict())
    values = []
    for path in sorted(runs.glob("*/record.json")):
        record = load_record(path)
        value = ((record or {}).get("metrics") or {}).get("reported_value")
        if record and record.get("status") == "ok" and value is not None and setup_key(record["spec"]) == key:
            values.append(100 * value)
    if not values:
        return "not run yet"
    return f"{statistics.mean(values):.1f} ({len(values)} seed{'s' if len(values) > 1 else ''})"


def main() -> None:
    console = Console(width=max(110, Console().width))  # the table stays readable in a log or a narrow terminal
    console.print(
        f"[bold]seven-bench demo[/]: MiniLM on STS-B at sparsity 0.5, {STEPS} fine-tuning steps "
        f"(records in {RESULTS}/; rerunning reuses finished cells)"
    )
    rows = []
    started = time.perf_counter()
    for pruner, extra in CELLS.items():
        cfg = compose_config([*SHORT, f"pruner={pruner}", *extra])
        try:
            spec = build_spec(cfg)
        except UserError as err:
            console.print(f"seven-bench demo: error: {err}")
            sys.exit(2)
        console.print(f"cell {spec.cell_hash}: pruner={pruner}")
        rows.append((pruner, run_cell(spec, RESULTS, progress=True), full_recipe(pruner)))

    table = Table(
        title=f"STS-B dev Pearson x 100 (500 pairs), MiniLM, {STEPS} steps at lr 1e-4 "
        "(full recipe: 540 steps at 2e-5, 1,500 pairs)"
    )
    columns = ("pruner", "target sparsity", "achieved", "Pearson", "full recipe", "prune s", "train s", "status")
    for col in columns:
        table.add_column(col, justify="right" if col != "pruner" else "left")
    for pruner, rec, full in rows:
        metrics, sp, timing = rec.get("metrics", {}), rec.get("sparsity", {}), rec.get("timing", {})
        value = metrics.get("reported_value")
        table.add_row(
            pruner,
            f"{sp.get('target', 0):.3f}",
            f"{sp.get('achieved', float('nan')):.3f}",
            "–" if value is None else f"{100 * value:.1f}",
            full,
            f"{timing.get('prune_seconds', 0):.1f}",
            f"{timing.get('train_seconds', 0):.1f}",
            rec.get("status", "?"),
        )
    console.print(table)
    console.print(
        f"done in {time.perf_counter() - started:.0f} s; `seven-bench-tables --results-dir {RESULTS}` lays "
        "these records out as the paper's Table II"
    )
    for _, rec, _ in rows:
        for warning in rec.get("warnings", []):
            console.print(f"[yellow]warning[/] ({rec['spec']['pruner']['name']}): {warning}")
    if any(rec.get("status") != "ok" for _, rec, _ in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
