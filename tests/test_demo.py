"""`make demo`'s "full recipe" column: the committed proxy study's number for the demo's cell, and only it."""

from __future__ import annotations

from seven_bench.conf import compose_config
from seven_bench.demo import CELL, full_recipe
from seven_bench.records import record_path, write_record
from seven_bench.spec import build_spec
from tests.conftest import requires_shared_data


@requires_shared_data()
def test_full_recipe_is_the_mean_of_the_paper_recipe_records_of_the_demo_cell(tmp_path) -> None:
    def finished(value: float, *overrides: str, status: str = "ok") -> None:
        spec = build_spec(compose_config([*CELL, "pruner=seven_pre", *overrides])).to_dict()
        record = {"status": status, "spec": spec, "metrics": {"reported_value": value}}
        write_record(record_path(tmp_path, f"run{len(list(tmp_path.glob('*/*')))}"), record)

    assert full_recipe("seven_pre", tmp_path / "runs") == "not run yet"
    finished(0.50, "seed=0")
    finished(0.60, "seed=1")
    finished(0.90, "seed=2", "pruner.resurrection=true")  # Fig. 6's variant: another method
    finished(0.80, "seed=0", "trainer.epochs=10")  # a budget control: another recipe
    finished(0.70, "seed=0", "pruner.num_batches=8")  # the demo's own shortening is not the full recipe
    finished(0.99, "seed=3", status="failed")
    assert full_recipe("seven_pre", tmp_path / "runs") == "55.0 (2 seeds)"
    assert full_recipe("magnitude", tmp_path / "runs") == "not run yet"
