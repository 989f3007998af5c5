"""Cells end to end on tiny_bert with real RTE text: spec resolution, records, masks through training."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from seven_bench.conf import compose_config
from seven_bench.errors import UserError
from seven_bench.records import record_path
from seven_bench.run import run_cell
from seven_bench.spec import build_spec, cell_identity
from tests.conftest import requires_shared_data

pytestmark = requires_shared_data()

SMOKE = [
    "model=tiny_bert",
    "task=rte",
    "trainer.max_steps=4",
    "trainer.epochs=2",
    "task.max_train_examples=64",
    "task.max_eval_examples=32",
    "progress=false",
]


def _cfg(*overrides: str):
    return compose_config(overrides)


def _spec(*overrides: str):
    return build_spec(_cfg(*SMOKE, *overrides))


def test_seven_pre_takes_table_b1_values_per_task():
    from omegaconf import OmegaConf

    from seven_bench.spec import resolve_pruner

    plain = OmegaConf.to_container(_cfg("pruner=seven_pre").pruner)
    hp, _ = resolve_pruner(plain, "mnli")
    assert (hp["num_batches"], hp["alpha1"], hp["alpha2"]) == (150, 0.1, 0.2)
    hp, _ = resolve_pruner(plain, "mnist")  # CLIP tasks: Table B2
    assert (hp["num_batches"], hp["alpha1"], hp["alpha2"]) == (100, 0.8, 0.9)
    plain["alpha1"] = 0.3  # a typed value wins over the table
    assert resolve_pruner(plain, "mnli")[0]["alpha1"] == 0.3


def test_seven_dyn_qnli_window_code_vs_paper():
    from omegaconf import OmegaConf

    from seven_bench.spec import resolve_pruner

    plain = OmegaConf.to_container(_cfg("pruner=seven_dyn").pruner)
    assert resolve_pruner(plain, "qnli")[0]["window"] == 12000
    plain["hparams_source"] = "paper"
    assert resolve_pruner(plain, "qnli")[0]["window"] == 10000


def test_recipe_resolution_and_hash():
    spec = _spec("pruner=seven_pre", "sparsity=0.6")
    assert spec.trainer["optimizer"] == "adamw" and spec.trainer["epochs"] == 2 and spec.trainer["lr"] == 2e-5
    assert spec.trainer["recipe"] == "bert_pre+overrides"
    assert spec.trainer["overrides"] == ["epochs", "max_steps"]
    assert spec.cell_hash == _spec("pruner=seven_pre", "sparsity=0.6", "trainer.device=cpu").cell_hash
    # `overrides` names typed settings whose values the hash already holds: a record written before it keeps
    # its hash
    without = spec.to_dict()
    del without["trainer"]["overrides"]
    assert cell_identity(without) == cell_identity(spec.to_dict())
    assert spec.cell_hash != _spec("pruner=seven_pre", "sparsity=0.6", "seed=1").cell_hash
    # dense ignores sparsity, so a sweep's dense cells collapse into one
    assert _spec("pruner=dense", "sparsity=0.5").cell_hash == _spec("pruner=dense", "sparsity=0.6").cell_hash


@pytest.mark.parametrize(
    "overrides,needle",
    [
        (["sparsity=1.0"], "outside [0, 1)"),
        (["sparsity=-0.1"], "outside [0, 1)"),
        (["task=mnist"], "cannot run task=mnist"),
        (["pruner=seven_dyn", "task=mnist", "model=tiny_clip"], "pass pruner.start"),
    ],
)
def test_bad_input_is_one_line(overrides, needle):
    with pytest.raises(UserError) as err:
        build_spec(_cfg(*SMOKE, *overrides))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_missing_local_data_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("SEVEN_BENCH_DATA", str(tmp_path))
    with pytest.raises(UserError, match="glue/RTE/train.tsv"):
        build_spec(_cfg(*SMOKE))


def test_bert_offline_without_cache_says_use_minilm(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(UserError, match="use model=minilm"):
        build_spec(_cfg(*SMOKE, "model=bert"))


@pytest.mark.parametrize("pruner", ["magnitude", "snip", "grasp", "iter_snip", "force", "seven_pre", "random"])
def test_pre_pruners_reach_the_target_and_masked_weights_stay_zero(pruner, tmp_path):
    extra = {
        "iter_snip": ["pruner.num_steps=3"],
        "force": ["pruner.num_steps=3"],
        "seven_pre": ["pruner.num_batches=3"],
        "grasp": ["pruner.samples_per_class=4"],
    }.get(pruner, [])
    spec = _spec(f"pruner={pruner}", "sparsity=0.6", *extra)
    record = run_cell(spec, tmp_path, progress=False)
    assert record["status"] == "ok", record["error"]
    n = record["sparsity"]["prunable_weights"]
    assert abs(record["sparsity"]["achieved"] - 0.6) <= 2 / n  # GraSP's own cut keeps n - int(n s) + 1
    assert record["sparsity"]["pruned_but_nonzero"] == 0  # after 4 AdamW steps
    assert len(record["metrics"]["per_epoch"]) == 2 and record["metrics"]["reported_value"] is not None


def test_same_seed_same_mask_and_resume_skips_complete_cells(tmp_path):
    spec = _spec("pruner=seven_pre", "sparsity=0.5", "pruner.num_batches=2")
    first = run_cell(spec, tmp_path, progress=False)
    again = run_cell(spec, tmp_path / "other", progress=False)
    assert first["sparsity"]["per_layer"] == again["sparsity"]["per_layer"]
    assert first["metrics"]["reported_value"] == again["metrics"]["reported_value"]
    other_seed = run_cell(
        _spec("pruner=seven_pre", "sparsity=0.5", "pruner.num_batches=2", "seed=1"), tmp_path, progress=False
    )
    assert other_seed["sparsity"]["per_layer"] != first["sparsity"]["per_layer"]
    # a complete record is not rerun; a second table asking for it tags it
    again = run_cell(spec, tmp_path, experiment="table4", progress=False)
    assert again["created_at"] == first["created_at"] and again["experiments"] == ["table4"]
    assert json.loads(record_path(tmp_path, spec.cell_hash).read_text())["experiments"] == ["table4"]
    path = record_path(tmp_path, spec.cell_hash)
    broken = json.loads(path.read_text()) | {"status": "failed"}
    path.write_text(json.dumps(broken))
    assert run_cell(spec, tmp_path, progress=False)["status"] == "ok"


def test_seven_dyn_window_and_warning(tmp_path):
    spec = _spec("pruner=seven_dyn", "sparsity=0.5", "pruner.start=1", "pruner.window=3")
    record = run_cell(spec, tmp_path, progress=False)
    # window [1, 3): steps 1 and 2 prune to r = d + (1-d)(1-(k+1)/3)^3, stopping short of d by (1/3)^3 (1-d)
    assert record["status"] == "ok"
    expected_keep = 0.5 + 0.5 * (1 / 3) ** 3
    assert record["sparsity"]["achieved"] == pytest.approx(1 - expected_keep, abs=1e-3)
    late = run_cell(
        _spec("pruner=seven_dyn", "sparsity=0.5", "pruner.start=2", "pruner.window=10"), tmp_path, progress=False
    )
    assert any("outlasts" in w for w in late["warnings"])
    fitted = run_cell(
        _spec("pruner=seven_dyn", "sparsity=0.5", "pruner.start=2", "pruner.window=10", "pruner.fit_schedule=true"),
        tmp_path,
        progress=False,
    )
    assert fitted["pruner"]["window"] < 10 and not any("outlasts" in w for w in fitted["warnings"])


def test_cli_end_to_end_and_bad_names(tmp_path):
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "seven_bench.cli",
            *SMOKE,
            "pruner=magnitude",
            "sparsity=0.6",
            f"results_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "achieved 0.600" in ok.stdout
    assert len(list(tmp_path.glob("runs/*/record.json"))) == 1
    bad = subprocess.run(
        [sys.executable, "-m", "seven_bench.cli", "pruner=sevn_pre"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "seven_pre" in bad.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "seven_bench.cli", *SMOKE, "sparsity=1.5", f"results_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("seven-bench: error: sparsity=1.5")


def test_sweep_group_options_are_forced_but_checked():
    from seven_bench.cli import force_group_options

    argv = ["-m", "pruner=seven_dyn,gmp", "pruner.fit_schedule=true", "trainer.max_steps=3"]
    assert force_group_options(argv) == [
        "-m",
        "pruner=seven_dyn,gmp",
        "++pruner.fit_schedule=true",
        "trainer.max_steps=3",
        "+swept_options=[pruner.fit_schedule]",
    ]
    assert force_group_options(["pruner.fit_schedule=true"]) == [
        "pruner.fit_schedule=true"
    ]  # single runs: Hydra checks
    with pytest.raises(SystemExit):
        force_group_options(["-m", "pruner.fit_schedul=true"])


def test_the_pruner_is_built_once_per_cell(monkeypatch, tmp_path):
    import dataclasses

    from seven_bench.pruning.registry import PRUNERS

    entry = PRUNERS.get("magnitude")
    calls = []
    counting = dataclasses.replace(entry, build=lambda *a: calls.append(a) or entry.build(*a))
    monkeypatch.setitem(PRUNERS._entries, "magnitude", counting)
    spec = _spec("pruner=magnitude", "sparsity=0.5")
    assert len(calls) == 1  # validation builds it ...
    record = run_cell(spec, tmp_path, progress=False)
    assert record["status"] == "ok" and len(calls) == 1  # ... and the run takes that one
    run_cell(spec, tmp_path, force=True, progress=False)
    assert len(calls) == 2  # a second run of the same spec gets a fresh pruner
