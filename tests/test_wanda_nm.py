"""Wanda and N:M selection: hand-computed scores, calibration norms, per-row and N:M counts, and cells
through the CLI path on tiny_bert (and MiniLM, integration)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from seven_bench.errors import UserError
from seven_bench.pruning.base import PruneContext
from seven_bench.pruning.registry import PRUNERS
from seven_bench.pruning.selection import nm_groups_ok, nm_mask, nm_topk, rowwise_topk
from seven_bench.pruning.wanda import block_groups, wanda_scores
from tests.conftest import ToyModel, requires_shared_data


def test_wanda_score_by_hand():
    w = torch.tensor([[1.0, -2.0], [3.0, 4.0]])
    assert wanda_scores(w, torch.tensor([2.0, 0.5])).tolist() == [[2.0, 1.0], [6.0, 2.0]]


def test_activation_norms_by_hand_and_padding_left_out():
    model = ToyModel(torch.ones(1, 2))
    ctx = PruneContext(model, dict(model.named_parameters()), iter(()), 1, 1, 0)
    norms = ctx.signal("activation_norm", [{"x": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "labels": torch.zeros(2)}])
    torch.testing.assert_close(norms["lin.weight"], torch.tensor([math.sqrt(10.0), math.sqrt(20.0)]))

    class Seq(nn.Module):  # (batch, tokens, features) with an attention mask, like a text encoder
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 1, bias=False)

        def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
            return SimpleNamespace(logits=self.lin(x).sum(1))

    seq = Seq()
    ctx = PruneContext(seq, {"lin.weight": seq.lin.weight}, iter(()), 1, 1, 0)
    x = torch.tensor([[[1.0, 0.0], [100.0, 100.0]], [[0.0, 2.0], [2.0, 0.0]]])  # token (0, 1) is padding
    batch = {"x": x, "attention_mask": torch.tensor([[1, 0], [1, 1]]), "labels": torch.zeros(2)}
    torch.testing.assert_close(ctx.activation_norms([batch])["lin.weight"], torch.tensor([math.sqrt(5.0), 2.0]))


def test_wanda_prunes_per_row_by_weight_times_input_norm():
    # inputs: feature 0 has norm 10, feature 1 norm 1, features 2-3 norm 0.1
    w = torch.tensor([[1.0, 5.0, 20.0, 40.0], [0.1, 30.0, 100.0, 1.0]])
    model = ToyModel(w.clone())
    x = torch.tensor([[10.0, 1.0, 0.1, 0.1]])
    ctx = PruneContext(model, dict(model.named_parameters()), iter([{"x": x, "labels": torch.zeros(1)}]), 1, 1, 0)
    pruner = PRUNERS.get("wanda").build({"nsamples": 1}, 0.5, 0)
    pruner.prepare(ctx)
    # scores: row 0 = [10, 5, 2, 4] -> keep 10, 5; row 1 = [1, 30, 10, .1] -> keep 30, 10 (magnitude keeps 100, 30)
    assert pruner.masks["lin.weight"].tolist() == [[True, True, False, False], [False, True, True, False]]
    assert model.lin.weight.tolist() == [[1.0, 5.0, 0.0, 0.0], [0.0, 30.0, 100.0, 0.0]]
    assert pruner.summary()["count_rule"] == "prune_floor"


def test_blocks_are_calibrated_in_order_and_the_pooler_last():
    names = [
        "enc.layer.1.q.weight",
        "pooler.dense.weight",
        "enc.layer.0.q.weight",
        "enc.layer.10.q.weight",
        "enc.layer.0.k.weight",
    ]
    assert block_groups(names) == [
        ["enc.layer.0.q.weight", "enc.layer.0.k.weight"],
        ["enc.layer.1.q.weight"],
        ["enc.layer.10.q.weight"],
        ["pooler.dense.weight"],
    ]


def test_row_selection_keeps_the_same_count_in_every_row():
    scores = {"w": torch.tensor([[5.0, 1.0, 3.0, 2.0], [0.0, 0.0, 0.0, 1.0]])}
    assert rowwise_topk(scores, 0.5)["w"].tolist() == [[True, False, True, False], [True, False, False, True]]


def test_nm_two_four_by_hand():
    score = torch.tensor([[1.0, 5.0, 3.0, 2.0, 8.0, 7.0, 6.0, 9.0]])
    mask = nm_mask(score, 2, 4)
    assert mask.tolist() == [[False, True, True, False, True, False, False, True]]
    assert nm_groups_ok(mask, 2, 4) and int(mask.sum()) == 4
    # an iterative method's denser step keeps round(r m) per group: 3 of 4 at r = 0.75
    assert nm_topk({"w": score}, 0.75, n=2, m=4)["w"].sum() == 6
    four_eight = nm_mask(torch.arange(16.0).reshape(2, 8), 4, 8)
    assert four_eight.tolist() == [[False] * 4 + [True] * 4] * 2


def test_nm_fixes_the_sparsity_and_the_shape():
    with pytest.raises(UserError, match="sparsity=0.5"):
        PRUNERS.get("magnitude").build({"selection": "nm", "n": 2, "m": 4}, 0.4, 0)
    with pytest.raises(UserError, match="divisible by m=4"):
        nm_mask(torch.ones(2, 6), 2, 4)


def _cell(*overrides: str, model: str = "tiny_bert"):

    from seven_bench.conf import compose_config
    from seven_bench.spec import build_spec

    smoke = [
        f"model={model}",
        "task=mrpc",
        "trainer.max_steps=2",
        "trainer.epochs=1",
        "task.max_train_examples=64",
        "task.max_eval_examples=32",
        "progress=false",
    ]
    return build_spec(compose_config([*smoke, *overrides]))


@requires_shared_data()
@pytest.mark.parametrize("pruner", ["magnitude", "snip", "wanda", "seven_pre"])
def test_nm_cells_through_the_cli_path(pruner, tmp_path):
    from seven_bench.run import run_cell

    extra = {"seven_pre": ["pruner.num_batches=3"], "wanda": ["pruner.nsamples=16"]}.get(pruner, [])
    spec = _cell(f"pruner={pruner}", "sparsity=0.5", "pruner.selection=nm", "pruner.n=2", "pruner.m=4", *extra)
    record = run_cell(spec, tmp_path, progress=False)
    assert record["status"] == "ok", record["error"]
    assert record["pruner"]["nm"] == "2:4" and record["pruner"]["nm_valid"] is True
    assert record["sparsity"]["achieved"] == pytest.approx(0.5, abs=1e-12)
    assert record["sparsity"]["pruned_but_nonzero"] == 0


@requires_shared_data()
def test_wanda_cell_through_the_cli_path(tmp_path):
    from seven_bench.run import run_cell

    record = run_cell(_cell("pruner=wanda", "sparsity=0.6", "pruner.nsamples=16"), tmp_path, progress=False)
    assert record["status"] == "ok", record["error"]
    assert record["pruner"]["sequential"] is True and record["pruner"]["calibration_tokens"] > 16
    assert abs(record["sparsity"]["achieved"] - 0.6) < 0.01  # int(cols * s) per row


@pytest.mark.integration
@requires_shared_data()
@pytest.mark.parametrize(
    "overrides",
    [
        ["pruner=wanda", "sparsity=0.5", "pruner.nsamples=16"],
        ["pruner=wanda", "sparsity=0.5", "pruner.nsamples=16", "pruner.selection=nm"],
    ],
)
def test_wanda_and_nm_on_minilm(overrides, tmp_path):
    from seven_bench.run import run_cell

    record = run_cell(_cell(*overrides, model="minilm"), tmp_path, progress=False)
    assert record["status"] == "ok", record["error"]
    assert record["sparsity"]["achieved"] == pytest.approx(0.5, abs=1e-3)
