"""seven_bench.tables on synthetic run records: statistics over seeds, layout, table rules, written files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from seven_bench import tables
from seven_bench.tables import (
    MISSING,
    aggregate,
    build_table,
    default_baselines_dir,
    format_cell,
    latex_table,
    load_baselines,
    load_records,
    main,
    method_key,
    records_frame,
    table_keys,
)

TEXT_METRICS = {"stsb": "pearson", "cola": "mcc"}
IMAGE_TASKS = {"mnist", "svhn", "gtsrb", "cifar10", "cifar100"}


def make_record(
    model: str = "bert",
    task: str = "rte",
    pruner: str = "seven_pre",
    timing: str = "pre",
    sparsity: float = 0.6,
    seed: int = 0,
    value: float | None = 0.7,
    status: str = "ok",
    experiment: str | None = None,
    optimizer: str = "adamw",
    achieved: float | None = None,
    **pruner_options: Any,
) -> dict[str, Any]:
    """A run record in schema 1, with the reported value as a fraction, like the runner writes it."""
    metric = "top1" if task in IMAGE_TASKS else TEXT_METRICS.get(task, "accuracy")
    failed = status == "failed"
    identity = [model, task, pruner, timing, sparsity, seed, status, experiment, optimizer, pruner_options]
    cell_hash = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    return {
        "schema_version": 1,
        "status": status,
        "error": "loss became NaN/inf at optimizer step 7" if failed else None,
        "failed_at_step": 7 if failed else None,
        "cell_hash": cell_hash,
        "experiment": experiment,
        "spec": {
            "model": {"name": model},
            "task": {"name": task},
            "pruner": {"name": pruner, "timing": timing, **pruner_options},
            "sparsity": sparsity,
            "seed": seed,
            "trainer": {
                "optimizer": optimizer,
                "lr": 2e-5,
                "batch_size": 32,
                "epochs": 3,
                "max_steps": None,
                "recipe": "test",
            },
        },
        "metrics": None
        if failed
        else {
            "per_epoch": [
                {"epoch": 1, "step": 78, "dev": {metric: value - 0.02}},
                {"epoch": 2, "step": 156, "dev": {metric: value}},
            ],
            "reported_split": "dev",
            "reported_metric": metric,
            "reported_value": value,
            "best_value": value,
        },
        "sparsity": {
            "target": sparsity,
            "achieved": sparsity if achieved is None else achieved,
            "prunable_weights": 1000,
            "per_layer": {},
        },
        "timing": {"prune_seconds": 1.5, "train_seconds": 10.0},
        "env": {"git_commit": "abc123", "versions": {}, "device": "cpu"},
        "warnings": [],
        "created_at": "2026-01-01T00:00:00",
    }


def write_records(results: Path, records: list[dict[str, Any]]) -> None:
    for record in records:
        folder = results / "runs" / record["cell_hash"]
        folder.mkdir(parents=True)
        (folder / "record.json").write_text(json.dumps(record))


@pytest.fixture(scope="module")
def baselines() -> pd.DataFrame:
    return load_baselines(default_baselines_dir())


def seeds(values: list[float], **options: Any) -> list[dict[str, Any]]:
    return [make_record(seed=seed, value=value, **options) for seed, value in enumerate(values)]


# ---------------------------------------------------------------------------- statistics


def test_mean_std_and_count_over_seeds(baselines: pd.DataFrame) -> None:
    frame = records_frame(seeds([0.70, 0.71, 0.72]))
    view = build_table("table2", frame, baselines)
    assert view.ours.loc["SEVEN-pre", "RTE@60"] == "71.00 ± 1.00 (3)"
    long = view.long.set_index(["row", "column"]).loc[("SEVEN-pre", "RTE@60")]
    assert long["n"] == 3
    assert long["ours_mean"] == pytest.approx(71.0)
    assert long["ours_std"] == pytest.approx(1.0)
    assert long["paper"] == pytest.approx(70.5)
    assert long["diff"] == pytest.approx(0.5)
    assert view.versus.loc["SEVEN-pre", "RTE@60"] == "71.00 vs 70.50 (+0.50)"


def test_single_seed_has_no_std() -> None:
    assert format_cell(63.0, float("nan"), 1) == "63.00 (1)"
    assert format_cell(float("nan"), float("nan"), 0) == MISSING


def test_failed_records_are_listed_but_not_averaged(baselines: pd.DataFrame) -> None:
    records = seeds([0.70, 0.72]) + [make_record(seed=9, status="failed", value=None)]
    frame = records_frame(records)
    assert len(frame) == 3
    assert (frame["status"] == "failed").sum() == 1
    agg = aggregate(frame)
    cell = agg[(agg["table"] == "table2") & (agg["method"] == "seven_pre")].iloc[0]
    assert cell["n"] == 2 and cell["mean"] == pytest.approx(71.0)
    notes = build_table("table2", frame, baselines).notes
    assert any("Failed record" in note and "NaN" in note for note in notes)


def test_dense_records_fill_both_bert_tables_and_every_column_of_the_task(baselines: pd.DataFrame) -> None:
    frame = records_frame(seeds([0.69, 0.69], pruner="none", timing="none", sparsity=0.0))
    assert set(aggregate(frame)["table"]) == {"table2", "table3"}
    for key in ("table2", "table3"):
        view = build_table(key, frame, baselines)
        assert view.ours.loc["Full BERT-base", "RTE@60"] == "69.00 ± 0.00 (2)"
        assert ("Full BERT-base", "RTE") not in view.missing
        assert ("Full BERT-base", "STS-B") in view.missing


def test_records_csv_columns() -> None:
    frame = records_frame(seeds([0.70]))
    row = frame.iloc[0]
    assert row["value_pct"] == pytest.approx(70.0)
    assert row["per_epoch_pct"] == "68.00;70.00"
    assert row["tables"] == "table2"
    assert row["method"] == "seven_pre"
    assert row["optimizer"] == "adamw" and row["epochs"] == 3


# ---------------------------------------------------------------------------- layout


def test_missing_cells_render_as_dash_and_are_listed(baselines: pd.DataFrame) -> None:
    view = build_table("table2", records_frame(seeds([0.7])), baselines)
    assert view.ours.loc["Random", "RTE@60"] == MISSING
    assert ("Random", "RTE@60") in view.missing
    assert ("SEVEN-pre", "RTE@60") not in view.missing
    assert len(view.missing) == 63 - 1
    assert list(view.ours.index[:3]) == ["Full BERT-base", "Random", "One-shot"]
    assert list(view.ours.columns) == ["STS-B@50", "WNLI@90", "QNLI@70", "MRPC@50", "RTE@60", "SST-2@60", "CoLA@50"]
    markdown = tables.render_markdown(view)
    assert "## Missing cells (62)" in markdown
    assert "- Random: STS-B@50, WNLI@90, QNLI@70, MRPC@50, RTE@60, SST-2@60, CoLA@50" in markdown


def test_stand_in_model_gets_its_own_row_and_no_paper_value(baselines: pd.DataFrame) -> None:
    frame = records_frame(seeds([0.60, 0.62], model="minilm"))
    view = build_table("table2", frame, baselines)
    assert view.ours.loc["SEVEN-pre [minilm]", "RTE@60"] == "61.00 ± 1.41 (2)"
    assert view.ours.loc["SEVEN-pre", "RTE@60"] == MISSING
    assert view.versus.loc["SEVEN-pre [minilm]", "RTE@60"] == f"61.00 vs {MISSING}"
    assert ("SEVEN-pre", "RTE@60") in view.missing
    assert view.ours.index[-1] == "SEVEN-pre [minilm]"  # after the paper's rows


def test_extra_columns_and_methods_come_after_the_papers(baselines: pd.DataFrame) -> None:
    records = seeds([0.6], sparsity=0.8) + seeds([0.6], pruner="wanda")
    view = build_table("table2", records_frame(records), baselines)
    assert view.ours.columns[-1] == "RTE@80"
    assert view.ours.index[-1] == "Wanda"
    assert view.ours.loc["SEVEN-pre", "RTE@80"] == "60.00 (1)"


def test_notes_flag_sparsity_shortfall_metric_and_config_mismatch(baselines: pd.DataFrame) -> None:
    short = seeds([0.72], pruner="seven_dyn", timing="dyn", achieved=0.555)
    mixed = [
        make_record(task="qnli", sparsity=0.7, seed=0),
        make_record(task="qnli", sparsity=0.7, seed=1, num_batches=50),
    ]
    wrong_metric = make_record(task="mrpc", sparsity=0.5)
    wrong_metric["metrics"]["reported_metric"] = "f1"
    frame = records_frame(short + mixed + [wrong_metric])
    notes3 = build_table("table3", frame, baselines).notes
    assert any("SEVEN-dyn, RTE@60: achieved sparsity 55.50%" in note for note in notes3)
    notes2 = build_table("table2", frame, baselines).notes
    assert any("SEVEN-pre, QNLI@70: averages records of different configurations" in note for note in notes2)
    assert any("SEVEN-pre, MRPC@50: records report f1" in note for note in notes2)


def test_latex_escapes_and_uses_booktabs() -> None:
    table = pd.DataFrame(
        [["71.00 ± 1.00 (3)", MISSING]],
        index=pd.Index(["SEVEN-pre [tiny_bert]"], name="Method"),
        columns=["RTE@60", "CoLA@50"],
    )
    tex = latex_table(table, "Table II: 60% sparsity", "tab:x")
    assert r"71.00 $\pm$ 1.00 (3) & --" in tex
    assert r"SEVEN-pre [tiny\_bert]" in tex and r"60\% sparsity" in tex
    assert r"\toprule" in tex and r"\bottomrule" in tex


# ---------------------------------------------------------------------------- table rules


@pytest.mark.parametrize(
    "options, expected",
    [
        (dict(model="clip", task="cifar10", timing="pre"), ["table1"]),
        (dict(model="tiny_clip", task="cifar10", pruner="none", timing="none", sparsity=0.0), ["table1"]),
        (dict(model="clip", task="cifar10", pruner="platon", timing="dyn"), []),
        (dict(model="bert", timing="pre"), ["table2"]),
        (dict(model="minilm", pruner="platon", timing="dyn"), ["table3"]),
        (dict(model="tiny_bert", pruner="none", timing="none", sparsity=0.0), ["table2", "table3"]),
        (dict(correction="m_only"), ["table4"]),
        (dict(model="clip", task="cifar100", first_moment="signed"), ["table4"]),
        (dict(correction="full", first_moment="abs", resurrection=False), ["table2"]),
        (dict(optimizer="lion"), ["table5"]),
        (dict(experiment="table4"), ["table4"]),
        (dict(model="clip", task="cifar10", experiment="fig4"), ["fig4"]),
        (dict(model="clip", task="cifar10", pruner="gmp", timing="dyn"), ["table1"]),
        (dict(model="bert", pruner="gmp", timing="dyn"), ["table2"]),
    ],
)
def test_table_keys(options: dict[str, Any], expected: list[str]) -> None:
    assert table_keys(make_record(**options)) == expected


@pytest.mark.parametrize(
    "options, key, label",
    [
        (dict(), "seven_pre", "SEVEN-pre"),
        (dict(pruner="none", timing="none", sparsity=0.0), "dense", "Dense"),
        (dict(correction="m_only"), "seven_pre[correction=m_only]", "SEVEN-pre (correction=m_only)"),
        (
            dict(first_moment="signed", correction="none"),
            "seven_pre[first_moment=signed,correction=none]",
            "SEVEN-pre (first_moment=signed,correction=none)",
        ),
        (dict(optimizer="lion"), "seven_pre_lion", "SEVEN-pre-Lion"),
        (dict(pruner="lth", optimizer="lion"), "lth_lion", "Lottery Ticket (Lion)"),
        (dict(pruner="platon", timing="dyn", variant="seven_repo"), "platon[seven_repo]", None),
        (dict(pruner="platon", timing="dyn", variant="original"), "platon", "PLATON"),
    ],
)
def test_method_keys_and_labels(options: dict[str, Any], key: str, label: str | None) -> None:
    assert method_key(make_record(**options)) == key
    if label is not None:
        assert tables.method_label(key) == label


def test_paper_labels_per_table() -> None:
    assert tables.method_label("magnitude", "table1") == "One-shot[Mag]"
    assert tables.method_label("magnitude", "table2") == "One-shot"
    assert tables.method_label("dense", "table1") == "Dense"
    assert tables.method_label("dense", "table3") == "Full BERT-base"


def test_ablation_and_lion_rows_land_in_their_tables(baselines: pd.DataFrame) -> None:
    records = seeds([0.90], model="clip", task="cifar10", sparsity=0.7, correction="m_only") + seeds(
        [0.66], optimizer="lion"
    )
    frame = records_frame(records)
    table4 = build_table("table4", frame, baselines)
    assert table4.ours.loc["SEVEN-pre (correction=m_only)", "CIFAR10@70"] == "90.00 (1)"
    assert list(table4.ours.index[:4]) == [
        "SEVEN-pre variant a (label stripped)",
        "SEVEN-pre variant b (label stripped)",
        "SEVEN-pre variant c (label stripped)",
        "SEVEN-pre",
    ]
    table5 = build_table("table5", frame, baselines)
    assert table5.versus.loc["SEVEN-pre-Lion", "RTE@60"] == "66.00 vs 66.30 (-0.30)"
    assert (build_table("table2", frame, baselines).long["n"] == 0).all()  # neither feeds Table II


# ---------------------------------------------------------------------------- files and CLI


def test_main_writes_every_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    write_records(
        results,
        seeds([0.70, 0.71, 0.72])
        + seeds([0.95, 0.96], model="clip", task="cifar10", sparsity=0.8)
        + [make_record(seed=5, status="failed", value=None)],
    )
    (results / "runs" / "broken").mkdir()
    (results / "runs" / "broken" / "record.json").write_text("{not json")

    assert main(["--results-dir", str(results)]) == 0

    out = capsys.readouterr().out
    assert "6 run records (1 failed)" in out
    assert "skipped" in out and "broken" in out
    assert "missing Random: STS-B@50" in out
    tables_dir = results / "tables"
    for key in ("table1", "table2", "table3", "table4", "table5"):
        for suffix in (".csv", ".md", ".tex", "_vs_paper.csv", "_vs_paper.md", "_vs_paper.tex"):
            assert (tables_dir / f"{key}{suffix}").stat().st_size > 0
    records = pd.read_csv(tables_dir / "records.csv")
    assert len(records) == 6 and (records["status"] == "failed").sum() == 1
    table2 = pd.read_csv(tables_dir / "table2.csv", index_col="Method")
    assert table2.loc["SEVEN-pre", "RTE@60"] == "71.00 ± 1.00 (3)"
    assert "71.00 vs 70.50 (+0.50)" in (tables_dir / "table2_vs_paper.md").read_text()
    assert "- Random: MNIST@70" in (tables_dir / "table1.md").read_text()
    for name in ("sparsity_curve_bert_rte", "sparsity_curve_clip_cifar10"):
        for suffix in (".png", ".pdf"):
            assert (results / "plots" / f"{name}{suffix}").stat().st_size > 0


def test_load_records_skips_other_schemas(tmp_path: Path) -> None:
    old = make_record()
    old["schema_version"] = 0
    write_records(tmp_path, [old, make_record(seed=1)])
    records, skipped = load_records(tmp_path)
    assert len(records) == 1 and len(skipped) == 1


def test_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--results-dir", str(tmp_path / "nowhere")]) == 2
    assert "no run records" in capsys.readouterr().err
    write_records(tmp_path, seeds([0.7]))
    assert main(["--results-dir", str(tmp_path), "--baselines", str(tmp_path)]) == 2
    assert "--baselines" in capsys.readouterr().err


def test_schedule_plots_one_file_per_dynamic_run(tmp_path):
    from seven_bench.tables import plot_schedules

    def record(name, cell, trajectory, status="ok"):
        return {
            "status": status,
            "cell_hash": cell,
            "pruner": {"trajectory": trajectory},
            "spec": {
                "model": {"name": "tiny_bert"},
                "task": {"name": "rte"},
                "pruner": {"name": name},
                "sparsity": 0.5,
            },
        }

    steps = [{"step": s, "target_keep": 1 - 0.1 * s, "achieved_keep": 1 - 0.1 * s} for s in range(1, 6)]
    soft = [{"step": s, "target_keep": None, "achieved_keep": 0.9} for s in range(1, 4)]
    written = plot_schedules(
        [
            record("seven_dyn", "aaa", steps),
            record("soft_movement", "bbb", soft),
            record("snip", "ccc", []),
            record("platon", "ddd", steps, status="failed"),
        ],
        tmp_path,
    )
    assert [p.name for p in written] == [
        "schedule_tiny_bert_rte_seven_dyn_aaa.png",
        "schedule_tiny_bert_rte_soft_movement_bbb.png",
    ]
    assert all(p.stat().st_size > 0 for p in written)
