"""plan=true's cost estimate: what the cells left take, from the finished runs of their setups."""

from __future__ import annotations

from seven_bench.conf import compose_config
from seven_bench.records import SCHEMA_VERSION, duration_label, expected_seconds, record_path, write_record
from seven_bench.spec import build_spec
from seven_bench.sweep import plan_line

BASE = ["model=tiny_bert", "task=rte", "pruner=magnitude"]


def _spec(*overrides: str) -> dict:
    return build_spec(compose_config([*BASE, *overrides])).to_dict()


def _finished(results_dir, spec: dict, seconds: float, status: str = "ok") -> None:
    name = f"run{len(list(results_dir.glob('runs/*')))}"
    record = {"schema_version": SCHEMA_VERSION, "status": status, "spec": spec, "timing": {"total_seconds": seconds}}
    write_record(record_path(results_dir, name), record)


def test_expected_seconds_is_the_mean_of_the_same_setup_other_seeds_first(tmp_path) -> None:
    assert expected_seconds(tmp_path, _spec("sparsity=0.5", "seed=2")) is None  # nothing finished yet
    _finished(tmp_path, _spec("sparsity=0.5", "seed=0"), 100.0)
    _finished(tmp_path, _spec("sparsity=0.5", "seed=1"), 200.0)
    _finished(tmp_path, _spec("sparsity=0.7", "seed=0"), 1000.0)
    _finished(tmp_path, _spec("sparsity=0.5", "seed=3"), 9999.0, status="failed")  # a failed run times nothing
    _finished(tmp_path, _spec("sparsity=0.5", "seed=0", "pruner=snip"), 5.0)  # another method: another setup
    _finished(tmp_path, _spec("sparsity=0.5", "seed=0", "trainer.max_steps=3"), 7.0)  # another budget, too

    same = expected_seconds(tmp_path, _spec("sparsity=0.5", "seed=2"))
    assert same == {"seconds": 150.0, "runs": 2, "same_sparsity": True}
    # no run at 0.8: every sparsity of the setup, (100 + 200 + 1000) / 3
    other = expected_seconds(tmp_path, _spec("sparsity=0.8", "seed=0"))
    assert other is not None and other["runs"] == 3 and not other["same_sparsity"]
    assert abs(other["seconds"] - 1300.0 / 3) < 1e-9
    assert expected_seconds(tmp_path, _spec("sparsity=0.5", "seed=0", "pruner=random")) is None


def test_plan_line_sums_the_cells_left_and_counts_the_untimed() -> None:
    done = {"status": "planned", "state": "done", "cell": "a"}
    left = [
        {"status": "planned", "state": "to run", "cell": "b", "expected_seconds": 3600.0},
        {"status": "planned", "state": "resumes", "cell": "c", "expected_seconds": 1800.0},
        {"status": "planned", "state": "to run", "cell": "d", "expected_seconds": None},
    ]
    line = plan_line([done, *left, left[0]])
    assert line.startswith("seven-bench: plan of 4 cell(s): 1 done, 1 resumes, 0 failed before, 2 to run; 3 left")
    assert "about 1.5 h of compute for 2 of them at the speed of finished runs of their setups (1 untimed)" in line
    assert line.endswith("; 1 job(s) repeat a cell or were skipped for bad input")
    assert plan_line([done, left[2]]).endswith("1 left, none with a finished run of its setup to time it by")
    assert plan_line([done]).endswith("; 0 left") and "compute" not in plan_line([done])
    assert [duration_label(s) for s in (60.0, 89 * 60.0, 90 * 60.0, 5 * 3600.0)] == [
        "about 1 min",
        "about 89 min",
        "about 1.5 h",
        "about 5.0 h",
    ]
