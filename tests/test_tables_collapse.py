"""The paper-table view flags cells whose records warn of layer collapse (issue 9, item 5)."""

from __future__ import annotations

from seven_bench.tables import build_table, default_baselines_dir, load_baselines, records_frame
from tests.test_tables import make_record


def test_collapsed_cell_gets_a_dagger_and_a_note() -> None:
    collapsed = make_record(pruner="magnitude", value=0.5)
    collapsed["warnings"] = [
        "bert.pooler.dense.weight keeps 0.0136% of its weights (layer collapse): "
        "the classifier no longer sees the input"
    ]
    fine = make_record(pruner="seven_pre", value=0.7)
    view = build_table("table2", records_frame([collapsed, fine]), load_baselines(default_baselines_dir()))
    assert view.ours.loc["One-shot", "RTE@60"].endswith("†")
    assert not view.ours.loc["SEVEN-pre", "RTE@60"].endswith("†")
    assert any(note.startswith("† One-shot, RTE@60: 1 of 1 record(s) warn of layer collapse") for note in view.notes)
