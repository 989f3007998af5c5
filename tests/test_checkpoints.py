"""Fine-tune checkpoints: a fit killed mid-way and rerun ends bit for bit where the uninterrupted fit ends (on
CPU, same seed), for a pre pruner and for the dyn pruners whose state goes through `Pruner.state_dict`; the
checkpoint keys leave every cell's hash unchanged; the folder goes when the cell completes."""

from __future__ import annotations

import pytest
import torch

import seven_bench.train as train
from seven_bench.checkpoints import Checkpointer, checkpoint_interval
from seven_bench.conf import compose_config
from seven_bench.errors import UserError
from seven_bench.models import MODELS
from seven_bench.pruning.base import PruneContext, apply_masks_
from seven_bench.pruning.registry import PRUNERS
from seven_bench.run import run_cell
from seven_bench.spec import build_spec
from seven_bench.tasks.base import TaskInfo
from tests.conftest import requires_shared_data
from tests.test_mask_pins import SETTINGS, TINY, _batches, _pruner_config

STEPS_PER_EPOCH, EPOCHS = 5, 2


class Killed(Exception):
    pass


def _fit(key: str, folder, kill_at: int | None = None) -> dict[str, torch.Tensor]:
    """Build, prepare and fine-tune tiny_bert on 2 epochs of 5 synthetic batches with a checkpoint every 3
    steps (and at the epoch's end); `kill_at` raises inside that step. Returns the final weights."""
    torch.manual_seed(0)
    info = TaskInfo(name="mrpc", modality="text", num_labels=2, reported_metric="accuracy")
    bundle = MODELS.get("tiny_bert").build(TINY, info, torch.device("cpu"))
    cfg = _pruner_config(key)
    pruner = PRUNERS.get(cfg["name"]).build(cfg, 0.5, 0)
    ctx = PruneContext(bundle.model, bundle.prunable, _batches(1), 2, STEPS_PER_EPOCH * EPOCHS, 0)
    pruner.prepare(ctx)
    apply_masks_(bundle.prunable, pruner.masks)
    data = _batches(2)
    loader = [next(data) for _ in range(STEPS_PER_EPOCH)]
    real = train.train_step

    def step(*args, **kwargs):
        if kill_at is not None and args[5] == kill_at:
            raise Killed
        return real(*args, **kwargs)

    train.train_step = step
    try:
        result = train.fit(
            ctx, pruner, loader, {**SETTINGS, "epochs": EPOCHS}, lambda: {}, False, Checkpointer(folder, 3)
        )
    finally:
        train.train_step = real
    assert result.steps == STEPS_PER_EPOCH * EPOCHS
    return {n: t.detach().clone() for n, t in bundle.model.state_dict().items()}


@pytest.mark.parametrize("key", ["magnitude", "seven_dyn", "platon", "movement"])
def test_a_killed_fit_resumes_bit_for_bit(key, tmp_path):
    straight = _fit(key, tmp_path / "straight")
    with pytest.raises(Killed):
        _fit(key, tmp_path / "resumed", kill_at=7)  # checkpoints at steps 3, 5 (epoch end) and 6
    saved = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    assert (saved["step"], saved["epoch"], saved["batches_done"]) == (6, 2, 1)
    resumed = _fit(key, tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[n], resumed[n]) for n in straight), key


@requires_shared_data()
def test_an_interrupted_cell_resumes_from_its_checkpoint_and_then_deletes_it(tmp_path, monkeypatch):
    cell = [
        "model=tiny_bert",
        "task=rte",
        "pruner=magnitude",
        "sparsity=0.5",
        "task.max_train_examples=32",
        "task.max_eval_examples=16",
        "trainer.batch_size=8",
        "trainer.epochs=2",
        "trainer.checkpoint_every=3",
    ]
    straight = run_cell(build_spec(compose_config(cell)), tmp_path / "straight", progress=False)
    real = train.train_step

    def interrupted(*args, **kwargs):
        if args[5] == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_cell(build_spec(compose_config(cell)), tmp_path / "killed", progress=False)
    assert len(list((tmp_path / "killed" / "checkpoints").glob("*/checkpoint.pt"))) == 1
    monkeypatch.setattr(train, "train_step", real)
    resumed = run_cell(build_spec(compose_config(cell)), tmp_path / "killed", progress=False)
    assert resumed["status"] == "ok" and resumed["checkpoints"]["resumed_from"]["step"] == 4  # end of epoch 1
    assert resumed["metrics"]["per_epoch"] == straight["metrics"]["per_epoch"]
    assert not list((tmp_path / "killed" / "checkpoints").glob("*/checkpoint.pt"))  # deleted on completion


def test_checkpoint_interval_and_hash():
    assert checkpoint_interval("epoch", 78) == 78
    assert checkpoint_interval(20, 78) == 20
    assert checkpoint_interval(0, 78) == checkpoint_interval(None, 78) == 0
    with pytest.raises(UserError, match="checkpoint_every"):
        checkpoint_interval("often", 78)
    base = ["model=tiny_bert", "task=rte", "pruner=magnitude", "sparsity=0.5"]
    plain = build_spec(compose_config(base))
    tuned = build_spec(compose_config([*base, "trainer.checkpoint_every=7", "trainer.keep_checkpoints=true"]))
    assert plain.cell_hash == tuned.cell_hash  # checkpoints do not change what a cell computes
    assert tuned.trainer["checkpoint_every"] == 7 and tuned.trainer["keep_checkpoints"] is True
    with pytest.raises(UserError, match="checkpoint_every"):
        build_spec(compose_config([*base, "trainer.checkpoint_every=-1"]))


def test_cell_state_reads_what_a_rerun_would_do(tmp_path) -> None:
    """plan=true's four states, from the files alone: none, a checkpoint, a failed record, a complete one."""
    from seven_bench.records import SCHEMA_VERSION, cell_state, record_path, write_record

    assert cell_state(tmp_path, "abc") == "to run"
    Checkpointer(tmp_path / "checkpoints" / "abc", every_steps=1).save({"step": 1})
    assert cell_state(tmp_path, "abc") == "resumes"
    write_record(record_path(tmp_path, "abc"), {"status": "failed", "schema_version": SCHEMA_VERSION})
    assert cell_state(tmp_path, "abc") == "resumes"  # the checkpoint decides where a rerun starts
    write_record(record_path(tmp_path, "def"), {"status": "failed", "schema_version": SCHEMA_VERSION})
    assert cell_state(tmp_path, "def") == "failed before"
    write_record(record_path(tmp_path, "def"), {"status": "ok", "schema_version": SCHEMA_VERSION})
    assert cell_state(tmp_path, "def") == "done"
