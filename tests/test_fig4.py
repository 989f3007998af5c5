"""Fig. 4: the sweep configs expand to the figure's cells, and the tables tool draws the figure and its CSV from
records tagged fig4."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from seven_bench.conf import CONF_DIR
from seven_bench.tables import main
from seven_bench.tables.fig4 import fig4_frame, fig4_points, plot_fig4
from tests.test_sweeps import cell, cell_of, sweep_jobs
from tests.test_tables import make_record, write_records

# Written out on purpose (the configs must reproduce them): the paper gives no sparsities, the suite sweeps these.
SPARSITIES = (0.5, 0.6, 0.7, 0.8, 0.9)
PRE_METHODS = ("random", "magnitude", "snip", "grasp", "iter_snip", "force", "seven_pre")
TEXT_TASKS = tuple(t for t in ("mnli", "qqp", "squad") if (CONF_DIR / "task" / f"{t}.yaml").is_file())


@pytest.fixture
def hydra_conf() -> Iterator[None]:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        yield


def _axis(jobs: list[list[str]], key: str) -> set[str]:
    return {o.split("=", 1)[1] for job in jobs for o in job if o.startswith(f"{key}=")}


def test_fig4_sweeps_bert_with_id_on_the_large_text_sets(hydra_conf: None) -> None:
    jobs = sweep_jobs(["+experiment=fig4", *([] if "squad" in TEXT_TASKS else ["task=mnli,qqp"])])
    assert len(jobs) == len(TEXT_TASKS) * 8 * 5  # 120 with SQuAD
    assert {float(s) for s in _axis(jobs, "sparsity")} == set(SPARSITIES)
    cfgs = [compose("config", overrides=job) for job in jobs if "sparsity=0.7" in job]
    expected = {cell("bert", t, p, 0.7) for t in TEXT_TASKS for p in (*PRE_METHODS, "info_deletion")}
    assert {cell_of(cfg) for cfg in cfgs} == expected
    assert {cfg.experiment for cfg in cfgs} == {"fig4"}


def test_fig4_imagenet_is_clip_without_id(hydra_conf: None) -> None:
    jobs = sweep_jobs(["+experiment=fig4_imagenet"])
    assert len(jobs) == 7 * 5
    assert {float(s) for s in _axis(jobs, "sparsity")} == set(SPARSITIES)
    cfgs = [compose("config", overrides=job) for job in jobs if "sparsity=0.9" in job]
    assert {cell_of(cfg) for cfg in cfgs} == {cell("clip", "imagenet", p, 0.9) for p in PRE_METHODS}
    assert {cfg.experiment for cfg in cfgs} == {"fig4"}


def _records() -> list[dict[str, Any]]:
    records = [
        make_record("bert", "mnli", "seven_pre", sparsity=0.5, seed=0, value=0.80, experiment="fig4"),
        make_record("bert", "mnli", "seven_pre", sparsity=0.5, seed=1, value=0.82, experiment="fig4"),
        make_record("bert", "mnli", "seven_pre", sparsity=0.7, seed=0, value=0.75, experiment="fig4"),
        make_record("bert", "mnli", "info_deletion", sparsity=0.5, seed=0, value=0.78, experiment="fig4"),
        make_record("clip", "imagenet", "snip", sparsity=0.6, seed=0, value=0.5, experiment="fig4"),
        make_record("minilm", "squad", "magnitude", sparsity=0.5, seed=0, value=0.40, experiment="fig4"),
        make_record("bert", "mnli", "seven_pre", sparsity=0.5, seed=2, value=0.10, experiment="table3"),  # not fig4
    ]
    proxy = records[-2]
    proxy["spec"]["task"]["proxy_split"] = "by_article"
    proxy["cell_hash"] = "proxysquad01"
    return records


def test_fig4_points_are_means_over_seeds_per_panel() -> None:
    points = fig4_points(fig4_frame(_records()))
    mnli = points[(points["task"] == "mnli") & (points["method"] == "seven_pre")].set_index("sparsity_pct")
    assert mnli.loc[50.0, "n"] == 2 and mnli.loc[50.0, "mean"] == pytest.approx(81.0)
    assert mnli.loc[50.0, "std"] == pytest.approx(math.sqrt(2.0))  # (80, 82): sample std
    assert mnli.loc[70.0, "n"] == 1 and math.isnan(mnli.loc[70.0, "std"])
    assert set(points["label"]) == {"SEVEN-pre", "ID", "SNIP", "One-shot"}
    assert list(dict.fromkeys(points["task"])) == ["mnli", "squad_proxy", "imagenet"]  # the paper's panel order
    squad = points[points["task"] == "squad_proxy"]
    assert squad["panel"].iloc[0] == "minilm: SQuAD-proxy [stand-in]"
    assert 10.0 not in set(points["mean"])  # the table3 record is not part of the figure


def test_make_tables_draws_fig4_with_its_csv(tmp_path: Path) -> None:
    write_records(tmp_path, _records())
    assert main(["--results-dir", str(tmp_path)]) == 0
    plots = tmp_path / "plots"
    assert (plots / "fig4.png").stat().st_size > 1000 and (plots / "fig4.pdf").stat().st_size > 1000
    csv = pd.read_csv(plots / "fig4.csv")
    assert len(csv) == 5 and set(csv["panel"]) == {
        "bert: MNLI",
        "clip: ImageNet",
        "minilm: SQuAD-proxy [stand-in]",
    }
    row = csv[(csv["method"] == "info_deletion")].iloc[0]
    assert (row["label"], row["sparsity_pct"], row["mean"], row["n"]) == ("ID", 50.0, 78.0, 1)
    assert plot_fig4([], plots / "none") == []  # no fig4 record: no figure
