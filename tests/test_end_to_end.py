"""Whole paths a user takes: every model x pruner composes, CLIP through the CLI on real digits, a NaN
loss ends as a failed record, and a local-launcher sweep rendered by the tables tool."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import joblib
import pytest

import seven_bench.train
from seven_bench.conf import CONF_DIR, compose_config
from seven_bench.errors import UserError
from seven_bench.run import run_cell
from seven_bench.spec import build_spec
from tests.conftest import requires_shared_data

pytestmark = requires_shared_data()
MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
PRUNERS = sorted(p.stem for p in (CONF_DIR / "pruner").glob("*.yaml"))
# dyn pruners have no published schedule for image tasks: the user passes one
IMAGE_SCHEDULE = {
    "seven_dyn": ["pruner.start=1", "pruner.window=5"],
    "platon": ["pruner.warmup_steps=2"],
    "movement": ["pruner.warmup_steps=2"],
    "soft_movement": ["pruner.warmup_steps=2"],
    "gmp": ["pruner.warmup_steps=2"],
}


def _cfg(*overrides: str):
    return compose_config(overrides)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("pruner", PRUNERS)
def test_every_model_and_pruner_composes(model, pruner, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache: hub models must say what to do
    image = "clip" in model
    overrides = [
        f"model={model}",
        f"pruner={pruner}",
        f"task={'mnist' if image else 'rte'}",
        "sparsity=0.5",
        *(IMAGE_SCHEDULE.get(pruner, []) if image else []),
    ]
    if image and pruner in ("info_deletion", "spp"):  # MLM pre-training; q/k/v gates: BERT-family models only
        with pytest.raises(UserError, match="prunes text models only"):
            build_spec(_cfg(*overrides))
        return
    if model in ("bert", "clip"):
        with pytest.raises(UserError, match="weights"):
            build_spec(_cfg(*overrides))
        return
    spec = build_spec(_cfg(*overrides))
    assert spec.pruner["name"] == pruner and spec.trainer["epochs"] > 0
    assert spec.sparsity == (0.0 if pruner == "dense" else 0.5)


def test_tiny_clip_on_real_mnist_digits_through_the_cli(tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "seven_bench.cli",
            "model=tiny_clip",
            "task=mnist",
            "pruner=seven_pre",
            "sparsity=0.7",
            "pruner.num_batches=3",
            "trainer.max_steps=4",
            "trainer.batch_size=16",
            "task.max_train_examples=64",
            "task.max_eval_examples=64",
            "progress=false",
            f"results_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    record = json.loads(next(tmp_path.glob("runs/*/record.json")).read_text())
    assert record["status"] == "ok" and record["spec"]["pruner"]["alpha1"] == 0.8  # Table B2
    assert record["model_info"]["prunable_tensors"] == 8  # 2 blocks x (qkv, out, fc, proj)
    assert abs(record["sparsity"]["achieved"] - 0.7) <= 1 / record["sparsity"]["prunable_weights"]
    assert record["sparsity"]["pruned_but_nonzero"] == 0
    assert record["metrics"]["reported_metric"] == "top1"
    assert any("t10k test images" in w for w in record["warnings"])  # the shared MNIST has no training images


def test_nan_loss_fails_the_cell_with_its_step(tmp_path, monkeypatch):
    real_loss, calls = seven_bench.train.task_loss, []

    def diverging(logits, labels, num_labels, temperature=1.0):
        calls.append(1)
        loss = real_loss(logits, labels, num_labels, temperature)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(seven_bench.train, "task_loss", diverging)
    spec = build_spec(
        _cfg(
            "model=tiny_bert",
            "task=rte",
            "pruner=magnitude",
            "sparsity=0.5",
            "trainer.max_steps=5",
            "task.max_train_examples=64",
            "task.max_eval_examples=32",
            "progress=false",
        )
    )
    record = run_cell(spec, tmp_path, progress=False)
    assert record["status"] == "failed" and record["failed_at_step"] == 2
    assert "NaN" in record["error"]
    # a failed cell is rerun by the next sweep
    monkeypatch.setattr(seven_bench.train, "task_loss", real_loss)
    assert run_cell(spec, tmp_path, progress=False)["status"] == "ok"


def _local_sweep(tmp_path: Path, pruners: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "seven_bench.cli",
            "-m",
            "hydra/launcher=local",
            "hydra.launcher.n_jobs=2",
            "model=tiny_bert",
            "task=rte",
            f"pruner={pruners}",
            "sparsity=0.6",
            "trainer.max_steps=2",
            "task.max_train_examples=64",
            "task.max_eval_examples=32",
            "progress=false",
            f"results_dir={tmp_path}",
            f"hydra.sweep.dir={tmp_path / 'multirun'}",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_local_launcher_sweep_renders_as_tables(tmp_path):
    sweep = _local_sweep(tmp_path, "magnitude,snip")
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in tmp_path.glob("runs/*/record.json")]
    assert len(records) == 2
    # joblib gives each of the n_jobs workers cores // n_jobs threads (make proxy relies on it), and says so
    assert {r["env"]["torch_threads"] for r in records} == {max(1, joblib.cpu_count() // 2)}
    tables = subprocess.run(
        [sys.executable, "-m", "seven_bench.tables", "--results-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tables.returncode == 0, tables.stderr[-2000:]
    table2 = (tmp_path / "tables" / "table2.md").read_text()
    assert "SNIP [tiny_bert]" in table2 and "One-shot [tiny_bert]" in table2
    assert (tmp_path / "tables" / "records.csv").read_text().count("\n") == 3
    assert list(Path(tmp_path / "plots").glob("sparsity_curve_tiny_bert_rte.png"))

    # plan=true: what a rerun would do, in this process (the launcher overrides are dropped), running nothing
    before = sorted(p.stat().st_mtime_ns for p in tmp_path.glob("runs/*/record.json"))
    plan = _local_sweep(tmp_path, "magnitude,snip,random,dense", "plan=true")
    assert plan.returncode == 0, plan.stderr[-2000:]
    lines = [line for line in plan.stdout.splitlines() if line.startswith("plan: cell")]
    assert len(lines) == 4 and sum(" done: " in line for line in lines) == 2
    assert any(" to run: tiny_bert rte random sparsity 0.6 seed 0" in line for line in lines)
    assert "seven-bench: plan of 4 cell(s): 2 done, 0 resumes, 0 failed before, 2 to run; 2 left" in plan.stdout
    assert sorted(p.stat().st_mtime_ns for p in tmp_path.glob("runs/*/record.json")) == before
    assert "Launching 4 jobs locally" in plan.stdout + plan.stderr  # Hydra's basic launcher, not joblib
