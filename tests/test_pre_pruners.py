"""The pre-pruning driver: schedule, selection, resurrection on/off, dense weights for FORCE."""

import itertools

import torch

from seven_bench.pruning.base import PruneContext, achieved_sparsity, collapse_warnings
from seven_bench.pruning.pre import PrePruner, balanced_rows
from seven_bench.pruning.registry import PRUNERS
from seven_bench.pruning.schedules import linear
from tests.conftest import ToyModel


class ScriptedScores:
    """A criterion whose scores per step are given: isolates the driver's logic."""

    signal = "none"

    def __init__(self, per_step):
        self.per_step, self.t = per_step, 0

    def update(self, t, weights, signal):
        self.t = t

    def scores(self):
        return {"lin.weight": torch.tensor([self.per_step[self.t - 1]])}

    def forget(self, masks):
        pass


def _ctx(weight, batches=()):
    model = ToyModel(weight)
    return PruneContext(model, {"lin.weight": model.lin.weight}, iter(batches), num_labels=1, total_steps=1, seed=0)


def test_without_resurrection_pruned_weights_never_return():
    # linear schedule, d=0.5, n=2: keep 0.75 then 0.5
    ctx = _ctx(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    pruner = PrePruner("x", 0.5, ScriptedScores([[3, 2, 1, 0], [0, 1, 2, 3]]), linear, steps=2)
    pruner.prepare(ctx)
    assert pruner.masks["lin.weight"].tolist() == [[False, True, True, False]]
    assert ctx.prunable["lin.weight"].tolist() == [[0.0, 2.0, 3.0, 0.0]]


def test_with_resurrection_a_pruned_weight_returns_with_its_dense_value():
    ctx = _ctx(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    pruner = PrePruner("x", 0.5, ScriptedScores([[3, 2, 1, 0], [0, 1, 2, 3]]), linear, steps=2, resurrection=True)
    pruner.prepare(ctx)
    assert pruner.masks["lin.weight"].tolist() == [[False, False, True, True]]
    # index 3 was pruned at step 1 and came back with its pretrained value
    assert ctx.prunable["lin.weight"].tolist() == [[0.0, 0.0, 3.0, 4.0]]


def _regression_batches():
    gen = torch.Generator().manual_seed(0)
    while True:
        yield {"x": torch.randn(8, 6, generator=gen), "labels": torch.randn(8, generator=gen)}


def test_iterative_snip_masks_are_nested_and_reach_the_target():
    ctx = _ctx(torch.randn(1, 6, generator=torch.Generator().manual_seed(1)), _regression_batches())
    pruner = PRUNERS.get("iter_snip").build({"schedule": "exponential", "num_steps": 3, "num_batches": 2}, 0.5, 0)
    seen = []
    orig_select = pruner.select

    def spy(scores, ratio, eligible, **kw):
        out = orig_select(scores, ratio, eligible, **kw)
        seen.append(out["lin.weight"].clone())
        return out

    pruner.select = spy
    pruner.prepare(ctx)
    for earlier, later in zip(seen, seen[1:]):
        assert not (later & ~earlier).any()
    assert int(pruner.masks["lin.weight"].sum()) == 3
    assert [round(r, 6) for _, r, _ in pruner.trajectory] == [round(0.5 ** (t / 3), 6) for t in (1, 2, 3)]


def test_force_scores_dense_weights_and_keeps_their_values():
    w = torch.randn(1, 6, generator=torch.Generator().manual_seed(2))
    ctx = _ctx(w.clone(), _regression_batches())
    pruner = PRUNERS.get("force").build({"schedule": "exponential", "num_steps": 3, "num_batches": 1}, 0.5, 0)
    pruner.prepare(ctx)
    kept = pruner.masks["lin.weight"]
    assert torch.equal(ctx.prunable["lin.weight"][kept], w[kept])
    assert (ctx.prunable["lin.weight"][~kept] == 0).all()


def test_seven_pre_zeroes_scores_of_pruned_weights():
    ctx = _ctx(torch.randn(1, 6, generator=torch.Generator().manual_seed(3)), _regression_batches())
    cfg = {
        "num_batches": 4,
        "alpha1": 0.8,
        "alpha2": 0.9,
        "eps": 1e-9,
        "first_moment": "abs",
        "correction": "full",
        "resurrection": False,
        "schedule": "exponential",
    }
    pruner = PRUNERS.get("seven_pre").build(cfg, 0.5, 0)
    pruner.prepare(ctx)
    mask = pruner.masks["lin.weight"]
    assert int(mask.sum()) == 3
    assert (pruner.criterion.state["lin.weight"].score[~mask] == 0).all()


def test_random_pruner_is_seeded():
    masks = []
    for seed in (0, 0, 1):
        ctx = _ctx(torch.ones(4, 25))
        pruner = PRUNERS.get("random").build({}, 0.3, seed)
        pruner.prepare(ctx)
        masks.append(pruner.masks["lin.weight"])
    assert torch.equal(masks[0], masks[1]) and not torch.equal(masks[0], masks[2])
    assert int(masks[0].sum()) == 30


def test_grasp_sample_is_class_balanced():
    labels = itertools.cycle([0, 0, 0, 1])

    def stream():
        while True:
            yield {"x": torch.zeros(4, 2), "labels": torch.tensor([next(labels) for _ in range(4)])}

    rows = balanced_rows(stream(), per_class=3, num_labels=2)
    got = torch.cat([b["labels"] for b in rows])
    assert sorted(got.tolist()) == [0, 0, 0, 1, 1, 1]


def test_a_globally_emptied_layer_is_reported_as_collapse():
    # a small-scale "pooler" beside a large-scale layer: one global magnitude threshold at 50% takes
    # every pooler weight (4 of 8), which the record must flag instead of showing a silent chance score
    prunable = {
        "encoder.dense.weight": torch.nn.Parameter(torch.tensor([[5.0, 6.0], [7.0, 8.0]])),
        "pooler.dense.weight": torch.nn.Parameter(torch.tensor([[0.1, -0.2], [0.3, -0.4]])),
    }
    pruner = PRUNERS.get("magnitude").build({"name": "magnitude"}, 0.5, 0)
    pruner.prepare(PruneContext(torch.nn.Module(), prunable, iter(()), num_labels=1, total_steps=1, seed=0))
    masks = pruner.masks
    overall, per_layer = achieved_sparsity(prunable, masks)
    assert overall == 0.5 and per_layer == {"encoder.dense.weight": 0.0, "pooler.dense.weight": 1.0}
    (warning,) = collapse_warnings(per_layer)
    assert warning.startswith("pooler.dense.weight is fully pruned") and "model.prune_pooler=false" in warning
    assert collapse_warnings({"a": 0.98, "b": 0.0}) == []
