"""Information Deletion: the per-tensor cubic GMP counts, BERT's MLM masking, the stored pre-trained model reused
by a second cell, word embeddings pruned or dense, and one cell through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, Iterator

import pytest
import torch

from seven_bench.artifacts import ArtifactStore
from seven_bench.conf import compose_config
from seven_bench.errors import UserError
from seven_bench.models import MODELS
from seven_bench.pruning import info_deletion
from seven_bench.pruning.base import PruneContext, apply_masks_
from seven_bench.pruning.info_deletion import magnitude_gmp
from seven_bench.pruning.mlm import mlm_batches, task_rows
from seven_bench.pruning.registry import PRUNERS
from seven_bench.run import run_cell
from seven_bench.spec import build_spec
from seven_bench.tasks.base import TaskInfo
from tests.conftest import requires_shared_data

TINY = {"name": "tiny_bert", "hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64}
EMBEDDINGS = "bert.embeddings.word_embeddings.weight"
SMALL = {"burn_in_steps": 2, "steps": 6, "ramp_steps": 4, "update_frequency": 2, "mlm_batch_size": 4}


def test_cubic_gmp_counts_per_tensor():
    """d = 0.2, ramp 20, cut every 5 steps: r(t) = 0.2 + 0.8 (1 - t/20)^3 = 0.5375, 0.3, 0.2125, 0.2 at
    t = 5, 10, 15, 20, i.e. round(r n) kept of n = 100 and n = 50 *per tensor* (B's weights are all smaller
    than A's: one global threshold would empty it)."""
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randperm(100).float().add(1).reshape(10, 10))
    b = torch.nn.Parameter(torch.randperm(50).float().add(1).reshape(5, 10) * 1e-3)
    prunable = {"a": a, "b": b}
    gmp = magnitude_gmp(0.2, steps=30, ramp_steps=20, update_frequency=5, selection="layer", count_rule="exact")
    ctx = PruneContext(torch.nn.Module(), prunable, iter(()), 0, 30, 0)
    gmp.prepare(ctx)
    kept: dict[int, tuple[int, int]] = {}
    for step in range(30):
        gmp.after_optimizer_step(step, ctx)
        kept[step + 1] = tuple(int(gmp.masks[n].sum()) for n in ("a", "b"))  # type: ignore[index]
    assert kept[4] == (100, 50)  # no cut before t = 5
    assert kept[5] == (54, 27) and kept[9] == (54, 27)  # 53.75 -> 54, 26.875 -> 27
    assert kept[10] == (30, 15)
    assert kept[15] == (21, 11)  # 21.25 -> 21, 10.625 -> 11
    assert kept[20] == (20, 10) and kept[30] == (20, 10)
    assert gmp.mask_updates == 4
    # the largest |W| of each tensor survive: A keeps 81..100, B keeps 0.041..0.050
    assert sorted(a[gmp.masks["a"]].tolist()) == [float(v) for v in range(81, 101)]  # type: ignore[index]
    assert torch.all(b[gmp.masks["b"]] > 0.0405)  # type: ignore[index]


def _tiny(task: str = "mrpc") -> Any:
    torch.manual_seed(0)
    info = TaskInfo(name=task, modality="text", num_labels=2, reported_metric="accuracy")
    return MODELS.get("tiny_bert").build(TINY, info, torch.device("cpu"))


def _task_batches(tokenizer: Any, seed: int = 1) -> Iterator[dict[str, Any]]:
    """A GLUE-like stream: sentence pairs, right-padded, labels."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        rows = [tokenizer("the cat sat on the mat", "a dog ran home")] * 2 + [tokenizer("short one")] * 2
        length = max(len(r["input_ids"]) for r in rows)
        batch = {
            k: torch.tensor([r[k] + [0] * (length - len(r[k])) for r in rows])
            for k in ("input_ids", "token_type_ids", "attention_mask")
        }
        batch["input_ids"][:, 1:-1] = torch.where(
            batch["attention_mask"][:, 1:-1].bool() & (batch["input_ids"][:, 1:-1] != tokenizer.sep_token_id),
            torch.randint(2000, 5000, (4, length - 2), generator=gen),
            batch["input_ids"][:, 1:-1],
        )
        batch["labels"] = torch.tensor([0, 1, 0, 1])
        yield batch


def test_mlm_masking_labels_only_at_masked_positions():
    tokenizer = _tiny().tokenizer
    source = next(_task_batches(tokenizer))
    rows = list(task_rows(iter([source]), max_length=128))
    assert len(rows[0]["input_ids"]) == int(source["attention_mask"][0].sum())  # padding stripped
    assert rows[0]["token_type_ids"].count(1) > 0 and rows[2]["token_type_ids"].count(1) == 0  # segments kept
    many = iter(rows * 100)
    batch = next(mlm_batches(many, tokenizer, 400, 0.15, seed=0, device=torch.device("cpu")))
    original = torch.tensor([r["input_ids"] + [0] * (len(rows[0]["input_ids"]) - len(r["input_ids"])) for r in rows])
    original = original.repeat(100, 1)
    labels, inputs = batch["labels"], batch["input_ids"]
    picked = labels != -100
    special = torch.isin(original, torch.tensor(tokenizer.all_special_ids))
    assert not picked[special].any()  # [CLS], [SEP], [PAD] are never predicted
    assert torch.equal(labels[picked], original[picked])  # the label is the original token
    assert torch.equal(inputs[~picked], original[~picked])  # unpicked positions are untouched
    assert torch.equal(batch["attention_mask"], (original != 0).long())
    share = picked.sum() / (~special).sum()
    assert 0.13 < share < 0.17  # 15% of the maskable tokens
    as_mask = (inputs[picked] == tokenizer.mask_token_id).float().mean()
    unchanged = (inputs[picked] == original[picked]).float().mean()
    assert 0.76 < as_mask < 0.84 and 0.06 < unchanged < 0.14  # 80% [MASK], 10% kept (10% random)


def _pruner(**cfg: Any) -> Any:
    return PRUNERS.get("info_deletion").build({**SMALL, **cfg}, 0.5, 0)


def _ctx(bundle: Any, store: ArtifactStore | None, task: str = "mrpc") -> PruneContext:
    return PruneContext(
        bundle.model,
        bundle.prunable,
        _task_batches(bundle.tokenizer),
        2,
        3,
        0,
        settings={"batch_size": 4},
        artifacts=store,
        identity={"model": TINY, "task": {"name": task}, "seed": 0},
        tokenizer=bundle.tokenizer,
    )


def test_artifact_is_made_once_and_reused_by_the_next_cell(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog\nan unlabelled passage of text\n" * 20)
    store = ArtifactStore(tmp_path)
    first, pruner = _tiny("mrpc"), _pruner(corpus=str(corpus))
    first.prunable.update(pruner.prunable_extra(first.model))
    pruner.prepare(_ctx(first, store, "mrpc"))
    apply_masks_(first.prunable, pruner.masks)
    assert pruner.summary()["artifact"]["made"] and pruner.summary()["phases"]["pruning"]["steps"] == 6

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a reused artifact must not train")

    monkeypatch.setattr(info_deletion, "train_mlm", no_training)
    second, again = _tiny("rte"), _pruner(corpus=str(corpus))  # another task: the file corpus is task-agnostic
    head_before = second.model.classifier.weight.detach().clone()
    second.prunable.update(again.prunable_extra(second.model))
    again.prepare(_ctx(second, store, "rte"))
    assert not again.summary()["artifact"]["made"]
    assert again.steps_before_finetune() == pruner.steps_before_finetune() == 2 + 6  # burn-in + pruning run
    assert again.summary()["phases"] == pruner.summary()["phases"]  # the maker's facts, read back
    assert set(again.masks) == set(first.prunable) and EMBEDDINGS in again.masks
    for name in pruner.masks:
        assert torch.equal(again.masks[name], pruner.masks[name])
    theirs = dict(first.model.named_parameters())
    for name, param in second.model.named_parameters():
        if name.startswith("bert."):
            assert torch.equal(param, theirs[name]), name  # the pre-trained, pruned encoder
    assert torch.equal(second.model.classifier.weight, head_before)  # the task head stays this cell's own
    assert len(list((tmp_path / "artifacts").iterdir())) == 1


def test_word_embeddings_pruned_or_left_dense():
    pruned, dense = _pruner(), _pruner(prune_embeddings=False)
    for pruner, expect in ((pruned, True), (dense, False)):
        bundle = _tiny()
        table = bundle.model.bert.embeddings.word_embeddings.weight
        bundle.prunable.update(pruner.prunable_extra(bundle.model))
        pruner.prepare(_ctx(bundle, None))
        apply_masks_(bundle.prunable, pruner.masks)
        assert (EMBEDDINGS in pruner.masks) is expect
        zeros = int((table == 0).sum())
        assert zeros == (round(table.numel() * 0.5) if expect else 0)  # per tensor: exactly half of the table
        for name, mask in pruner.masks.items():  # every tensor at the target on its own
            assert int(mask.sum()) == round(mask.numel() * 0.5), name
    assert "deviation" in " ".join(pruned.summary()["warnings"])  # tiny_bert has no pretrained MLM head


def test_image_models_are_refused_before_loading(tmp_path):
    with pytest.raises(UserError, match="prunes text models only"):
        build_spec(compose_config(["model=tiny_clip", "task=mnist", "pruner=info_deletion", "sparsity=0.5"]))
    with pytest.raises(UserError, match="ramp_steps"):
        _pruner(ramp_steps=7)


CELL = [
    "model=tiny_bert",
    "task=rte",
    "pruner=info_deletion",
    "sparsity=0.5",
    "pruner.burn_in_steps=2",
    "pruner.steps=10",
    "pruner.ramp_steps=5",
    "pruner.update_frequency=5",
    "pruner.mlm_batch_size=4",
    "trainer.max_steps=2",
    "trainer.batch_size=8",
    "task.max_train_examples=32",
    "task.max_eval_examples=16",
    "progress=false",
]


@requires_shared_data()
def test_info_deletion_cell_through_the_cli(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "seven_bench.cli", *CELL, f"results_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    record = json.loads(next(tmp_path.glob("runs/*/record.json")).read_text())
    sparsity = record["sparsity"]
    assert record["status"] == "ok" and record["pruner"]["artifact"]["made"]
    assert sparsity["per_layer"][EMBEDDINGS] == 0.5 and sparsity["pruned_but_nonzero"] == 0
    assert abs(sparsity["achieved"] - 0.5) < 1e-6  # every tensor at exactly half (even sizes)
    assert record["pruner"]["mask_updates"] == 1 and record["pruner"]["selection"] == "layer"
    # the same cell again: the stored model is loaded, nothing is pre-trained, the fine-tune is the same
    again = run_cell(build_spec(compose_config([*CELL, f"results_dir={tmp_path}"])), tmp_path, force=True)
    assert again["status"] == "ok" and not again["pruner"]["artifact"]["made"]
    assert again["sparsity"]["per_layer"] == sparsity["per_layer"]
    assert again["metrics"]["reported_value"] == pytest.approx(record["metrics"]["reported_value"])
