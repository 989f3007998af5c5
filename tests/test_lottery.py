"""The lottery family: IMP round amounts, rewind targets, one path for every sparsity, a path killed in round
k resuming at round k, and Lottery Pools' interpolation and re-prune, each checked by hand."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import seven_bench.pruning.lth as lth
from seven_bench.conf import compose_config
from seven_bench.errors import UserError
from seven_bench.pruning.base import PruneContext
from seven_bench.pruning.lottery_pool import candidate_order, interpolate, pool_search, reprune
from seven_bench.pruning.lth import ImpPath, LotteryTicket, imp_cut, level_of, prune_count
from seven_bench.run import run_cell
from seven_bench.spec import build_spec
from tests.conftest import requires_shared_data

SGD = {"optimizer": "sgd", "lr": 0.05, "lr_schedule": "constant", "warmup_steps": 0, "max_grad_norm": None}


def test_round_amounts_are_ten_percent_of_the_original_count():
    # torch's global_unstructured amount 1/(10 - j) of the remaining weights, rounded as torch rounds
    assert [prune_count(100 - 10 * j, j, 0.1) for j in range(10)] == [10] * 10  # round 10 empties the rest
    remaining, pruned = 105, []
    for j in range(10):
        pruned.append(prune_count(remaining, j, 0.1))
        remaining -= pruned[-1]
    assert pruned[:3] == [10, 11, 10]  # 10.5 -> 10 (round half to even), 95/9 = 10.56 -> 11, 84/8 = 10.5 -> 10
    assert remaining == 0
    w = {"w": torch.tensor([[-5.0, 1.0, -3.0, 2.0, 4.0, -0.5, 6.0, 0.1, -7.0, 8.0]])}
    first = imp_cut(w, None, 0, 0.1)
    assert first["w"].tolist() == [[True] * 7 + [False, True, True]]  # |0.1| goes first
    second = imp_cut(w, first, 1, 0.1)  # 1/9 of the 9 left: one more, |-0.5|
    assert second["w"].tolist() == [[True] * 5 + [False, True, False, True, True]]
    assert level_of(0.6, 0.1) == 6
    with pytest.raises(UserError, match="multiple of 0.1"):
        level_of(0.55, 0.1)


class Tiny(nn.Module):
    """An encoder weight (prunable) and a task head named as BERT's (`classifier.`)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(4, 4, bias=False)
        self.classifier = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=self.classifier(torch.tanh(self.encoder(x))))


def _ctx(model: Tiny) -> PruneContext:
    torch.manual_seed(3)
    x = torch.randn(16, 4)
    batch = {"x": x, "labels": (x[:, 0] > 0).long()}
    prunable = {"encoder.weight": model.encoder.weight}
    return PruneContext(model, prunable, itertools.repeat(batch), 2, total_steps=4, seed=0, settings=SGD)


def test_rewind_targets_and_the_head_is_not_rewound():
    torch.manual_seed(0)
    model = Tiny()
    ctx = _ctx(model)
    initial = {n: t.clone() for n, t in model.state_dict().items()}
    path = ImpPath(ctx, initial, 0.1, round_steps=4, rewind_steps=0, lr_span="round")
    path.ensure(2)
    start = path._start_state(2)
    assert torch.equal(start["encoder.weight"], initial["encoder.weight"])  # rewound to theta0
    assert torch.equal(start["classifier.weight"], path.weights(1)["classifier.weight"])  # head keeps training
    assert not torch.equal(start["classifier.weight"], initial["classifier.weight"])
    assert [int(path.mask(r)["encoder.weight"].sum()) for r in (1, 2)] == [14, 12]  # round(1.6)=2, round(14/9)=2
    # rewind to step k: the weights after k = 2 dense steps of round 1
    torch.manual_seed(0)
    model = Tiny()
    ctx = _ctx(model)
    ticket = LotteryTicket("lth_rewind", 0.8, round_steps=4, rewind_steps=2, lr_span="round", ticket_init="rewind")
    ticket.prepare(ctx)
    torch.manual_seed(0)
    twin = Tiny()
    twin_ctx = _ctx(twin)
    torch.manual_seed(ctx.seed * 1000 + 1)  # round 1's seed
    lth.run_steps(twin_ctx, 2, SGD)
    k_weights = ticket.path.rewind_point()["encoder.weight"]
    assert torch.allclose(k_weights, twin.encoder.weight)
    assert not torch.allclose(k_weights, initial["encoder.weight"])
    # the ticket starts from the rewind point with the cell's fresh head; its mask is level 2
    assert torch.equal(model.encoder.weight, k_weights) and torch.equal(
        model.classifier.weight, initial["classifier.weight"]
    )
    assert int(ticket.masks["encoder.weight"].sum()) == 12
    assert ticket.summary()["rewind"] == {"to": "step", "steps": 2}


def test_lth_ticket_starts_from_the_pretrained_weights():
    torch.manual_seed(0)
    model = Tiny()
    ctx = _ctx(model)
    initial = {n: t.clone() for n, t in model.state_dict().items()}
    ticket = LotteryTicket("lth", 0.7, round_steps=3)
    ticket.prepare(ctx)
    assert all(torch.equal(initial[n], t) for n, t in model.state_dict().items())
    assert int(ticket.masks["encoder.weight"].sum()) == 16 - 2 - 2 - 2  # 1.6 -> 2, 14/9 -> 2, 12/8 = 1.5 -> 2
    facts = ticket.summary()["rounds"]
    assert [f["round"] for f in facts] == [1, 2, 3] and {f["source"] for f in facts} == {"ran"}


def test_pool_interpolation_and_reprune_by_hand():
    ticket = {"w": torch.tensor([4.0, 0.0, 2.0, 0.0]), "head": torch.tensor([1.0])}
    mask = {"w": torch.tensor([True, False, True, False])}
    near = {"w": torch.tensor([0.0, 3.0, 0.0, 1.0]), "head": torch.tensor([3.0])}
    mixed = interpolate(ticket, near, 0.5)
    assert mixed["w"].tolist() == [2.0, 1.5, 1.0, 0.5] and mixed["head"].tolist() == [2.0]
    pruned, new_mask = reprune(mixed, ["w"], keep=2)
    assert pruned["w"].tolist() == [2.0, 1.5, 0.0, 0.0] and new_mask["w"].tolist() == [True, True, False, False]
    assert pruned["head"].tolist() == [2.0]  # never pruned, only interpolated
    target = torch.tensor([2.0, 1.5, 0.0, 0.0])

    def score(weights, masks):
        return -float((weights["w"] - target).abs().sum())

    far = {"w": torch.tensor([-9.0, 0.0, 0.0, 9.0]), "head": torch.tensor([0.0])}
    final, final_mask, history = pool_search(ticket, mask, [(1, near), (2, far)], (0.25, 0.5), score)
    # near: alpha 0.5 hits the target exactly (score 0 > -3.5): accepted; far cannot beat 0: rejected
    assert [h["accepted"] for h in history] == [True, True, False]
    assert history[1]["alpha"] == 0.5 and history[1]["score"] == 0.0
    assert final["w"].tolist() == [2.0, 1.5, 0.0, 0.0] and final_mask["w"].tolist() == [True, True, False, False]
    assert candidate_order(3, 10, 19) == [3, 2, 4, 1, 5, 0, 6, 7, 8, 9]
    assert candidate_order(0, 4, 3) == [0, 1, 2]


# ------------------------------------------------------------------------------ cells on tiny_bert, real RTE
TINY_CELL = [
    "model=tiny_bert",
    "task=rte",
    "task.max_train_examples=32",
    "task.max_eval_examples=16",
    "trainer.batch_size=8",
    "trainer.max_steps=2",
    "progress=false",
]


def _run(tmp_path, *overrides):
    spec = build_spec(compose_config([*TINY_CELL, *overrides]))
    return run_cell(spec, tmp_path, progress=False)


@requires_shared_data()
def test_a_two_sparsity_sweep_builds_one_path_and_a_killed_path_resumes(tmp_path, monkeypatch):
    low = _run(tmp_path, "pruner=lth", "sparsity=0.1")
    high = _run(tmp_path, "pruner=lth", "sparsity=0.3")
    assert low["status"] == high["status"] == "ok"
    assert low["pruner"]["artifact"]["rounds_ran_here"] == [1]
    assert high["pruner"]["artifact"]["rounds_stored_before"] == [1]
    assert high["pruner"]["artifact"]["rounds_ran_here"] == [2, 3]  # 3 rounds in all: one path
    assert low["pruner"]["artifact"]["path"] == high["pruner"]["artifact"]["path"]
    assert abs(high["sparsity"]["achieved"] - 0.3) < 1e-3
    # the steps before the fine-tune count every round up to the ticket's, the stored one included
    steps = high["pruner"]["round_steps"]
    assert steps > 0 and low["timing"]["steps_before_finetune"] == steps
    assert high["timing"]["steps_before_finetune"] == 3 * steps
    # kill a 4-round cell in its round 3 (in another results dir), rerun: it resumes at round 3
    calls = {"n": 0}
    real = lth.run_steps

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed in round 3")
        return real(*args, **kwargs)

    other = tmp_path / "killed"
    monkeypatch.setattr(lth, "run_steps", dying)
    assert _run(other, "pruner=lth", "sparsity=0.4")["status"] == "failed"
    monkeypatch.setattr(lth, "run_steps", real)
    resumed = _run(other, "pruner=lth", "sparsity=0.4")
    assert resumed["pruner"]["artifact"]["rounds_stored_before"] == [1, 2]
    assert resumed["pruner"]["artifact"]["rounds_ran_here"] == [3, 4]
    straight = _run(tmp_path, "pruner=lth", "sparsity=0.4")  # the first path, uninterrupted
    assert [r["kept"] for r in resumed["pruner"]["rounds"]] == [r["kept"] for r in straight["pruner"]["rounds"]]
    assert resumed["metrics"]["reported_value"] == straight["metrics"]["reported_value"]


@requires_shared_data()
def test_lottery_pool_cell_reports_the_ticket_as_is(tmp_path):
    record = _run(tmp_path, "pruner=lottery_pool", "sparsity=0.1", "pruner.path_rounds=3", "pruner.alphas=[0.5]")
    assert record["status"] == "ok", record["error"]
    assert record["timing"]["steps"] == 0 and record["metrics"]["per_epoch"][0]["epoch"] == 0
    assert record["timing"]["steps_before_finetune"] == 3 * record["pruner"]["round_steps"]  # the whole path
    assert record["data_info"]["holdout"]["examples"] == 3  # 10% of 32, out of training
    assert [h["level"] for h in record["pruner"]["search"]] == [None, 1, 0, 2]
    assert abs(record["sparsity"]["achieved"] - 0.1) < 1e-3


@requires_shared_data()
def test_tiny_clip_cells_say_no_clip_lth_code_exists(tmp_path):
    clip = [
        "model=tiny_clip",
        "task=mnist",
        "task.max_train_examples=48",
        "task.max_eval_examples=16",
        "trainer.batch_size=16",
        "trainer.max_steps=2",
        "sparsity=0.1",
    ]
    pool = run_cell(
        build_spec(
            compose_config(
                [*clip, "pruner=lottery_pool", "pruner.path_rounds=2", "pruner.finetune=true", "pruner.rewind_steps=1"]
            )
        ),
        tmp_path,
        progress=False,
    )
    assert pool["status"] == "ok", pool["error"]
    assert pool["timing"]["steps"] == 2 and pool["pruner"]["reported"].startswith("the mask fine-tuned")
    assert abs(pool["sparsity"]["achieved"] - 0.1) < 1e-3
    assert pool["pruner"]["rewind"] == {"to": "step", "steps": 1}  # the path rewinds to step 1 of round 1
    assert "no CLIP LTH code" in pool["pruner"]["notes"][0]
