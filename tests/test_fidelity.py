"""Regression tests for the defects found by comparing masks with the original authors' code (issue 9):
hand-made cases for the count rules and ties, GraSP's example weighting and its eval-mode second
derivative, the clipping of movement's scores, and near-total layer collapse."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seven_bench.pruning.base import PruneContext, Pruner, collapse_warnings, dead_output_units
from seven_bench.pruning.dyn import SevenDyn
from seven_bench.pruning.registry import PRUNERS
from seven_bench.pruning.schedules import exponential, linear
from seven_bench.pruning.selection import global_topk, keep_count, layerwise_topk, rowwise_topk, select_flat
from seven_bench.pruning.seven_repo import SevenRepoDyn
from tests.conftest import ToyModel

# --------------------------------------------------------------------------------------------------
# 3. count rules: each original's, ties at the threshold included

SCORES = torch.tensor([5.0, 4.0, 4.0, 4.0, 1.0, 0.0])


@pytest.mark.parametrize(
    "rule,ratio,kept",
    [
        ("exact", 0.5, [1, 1, 1, 0, 0, 0]),  # round(3) = 3, the tie at 4 broken by position
        ("floor", 0.6, [1, 1, 1, 0, 0, 0]),  # int(3.6) = 3 (movement's TopKBinarizer)
        ("exact", 0.6, [1, 1, 1, 1, 0, 0]),  # round(3.6) = 4
        ("floor_ties", 0.5, [1, 1, 1, 1, 0, 0]),  # topk(3) -> threshold 4, ">=" keeps all three 4s
        ("floor_ties", 0.34, [1, 0, 0, 0, 0, 0]),  # topk(int(2.04) = 2) -> threshold 4 ... see below
        ("kthvalue_ties", 0.5, [1, 1, 1, 1, 0, 0]),  # kthvalue(int(3.0) = 3) = 4, keep ">= 4"
        ("kthvalue_ties", 0.6, [1, 1, 1, 1, 1, 0]),  # kthvalue(int(6 * 0.4) = 2) = 1, keep ">= 1": one more
        ("prune_floor", 0.6, [1, 1, 1, 1, 0, 0]),  # prune int(2.4) = 2: the two smallest
    ],
)
def test_count_rules_by_hand(rule, ratio, kept):
    if rule == "floor_ties" and ratio == 0.34:
        kept = [1, 1, 1, 1, 0, 0]  # threshold = the 2nd largest = 4: the three tied 4s all stay
    assert select_flat(SCORES, ratio, rule).int().tolist() == kept


def test_prune_floor_prunes_the_lower_index_of_a_tie_first():
    # Wanda's stable ascending sort: among equal scores the first ones go
    assert select_flat(torch.tensor([2.0, 1.0, 1.0, 3.0]), 0.75, "prune_floor").tolist() == [True, False, True, True]


def test_count_rules_at_the_edges_do_not_crash_where_the_originals_would():
    assert not select_flat(SCORES, 0.1, "floor_ties").any()  # int(0.6) = 0: topk of nothing
    assert select_flat(SCORES, 0.9, "kthvalue_ties").all()  # int(6 * 0.1) = 0: kthvalue(0)


def test_floor_ties_gives_pruned_entries_score_zero_as_seven_does():
    # SEVEN zeroes the importance of pruned entries and keeps ">= threshold": at a threshold of 0 they
    # come back, exactly as in strategies/pruner.py; exact never re-chooses them
    scores = {"a": torch.tensor([9.0, 0.0, 3.0, 2.0])}
    eligible = {"a": torch.tensor([False, True, True, True])}
    assert global_topk(scores, 0.75, eligible, "floor_ties")["a"].tolist() == [True, True, True, True]
    assert global_topk(scores, 0.75, eligible, "exact")["a"].tolist() == [False, True, True, True]
    assert global_topk(scores, 0.5, eligible, "floor_ties")["a"].tolist() == [False, False, True, True]


def test_layer_and_row_scopes_follow_the_rule_per_slice():
    scores = {"w": torch.tensor([[3.0, 3.0, 1.0, 0.0], [1.0, 2.0, 3.0, 4.0]])}
    rows = rowwise_topk(scores, 0.25, None, "floor_ties")["w"]
    assert rows.tolist() == [[True, True, False, False], [False, False, False, True]]
    assert rowwise_topk(scores, 0.5, None, "exact")["w"].sum(1).tolist() == [2, 2]
    assert layerwise_topk(scores, 0.25, None, "floor_ties")["w"].sum() == 4  # int(2) + the tie... 4 >= 3
    assert keep_count(0.5, 7, "exact") == 4 and keep_count(0.5, 7, "floor") == 3


def test_every_method_defaults_to_its_originals_rule_and_names_it():
    expect = {
        "seven_pre": "floor_ties",
        "force": "floor_ties",
        "iter_snip": "floor_ties",
        "grasp": "kthvalue_ties",
        "snip": "exact",
        "magnitude": "exact",
        "random": "exact",
    }
    cfg = {
        "num_batches": 1,
        "alpha1": 0.8,
        "alpha2": 0.9,
        "eps": 1e-9,
        "first_moment": "abs",
        "correction": "full",
        "resurrection": False,
        "schedule": "exponential",
        "num_steps": 2,
        "samples_per_class": 1,
        "temperature": 1.0,
        "count_rule": "original",
    }
    for name, rule in expect.items():
        pruner = PRUNERS.get(name).build(dict(cfg), 0.5, 0)
        assert pruner.count_rule == rule and pruner.summary()["count_rule"] == rule
    assert PRUNERS.get("seven_pre").build({**cfg, "count_rule": "exact"}, 0.5, 0).count_rule == "exact"


def test_seven_dyn_keeps_int_count_plus_ties_as_the_code():
    model = ToyModel(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    ctx = PruneContext(model, dict(model.named_parameters()), iter(()), 1, 10, 0)
    pruner = SevenDyn(0.5, start=0, window=4, alpha1=0.5, alpha2=0.5)
    pruner.prepare(ctx)
    model.lin.weight.grad = torch.ones(1, 4)
    pruner.after_optimizer_step(0, ctx)
    # r_0 = 0.7109: the code keeps topk(int(2.84) = 2), not round(2.84) = 3
    assert pruner.masks["lin.weight"].tolist() == [[False, False, True, True]]


def test_seven_repo_movement_variant_uses_sevens_cut():
    model = ToyModel(torch.tensor([[1.0, 2.0, 2.0, 4.0]]))
    ctx = PruneContext(model, dict(model.named_parameters()), iter(()), 1, 10, 0)
    pruner = SevenRepoDyn("movement", 0.5, start=0, window=4)
    pruner.prepare(ctx)
    model.lin.weight.grad = torch.ones(1, 4)
    pruner.after_optimizer_step(0, ctx)
    # |W g| = [1, 2, 2, 4]; topk(2) -> threshold 2, ">=" keeps the tied pair: 3 kept (round would keep 3 by
    # position too, but int(2.84) + ties is what the code computes)
    assert pruner.masks["lin.weight"].tolist() == [[False, True, True, True]]
    model.lin.weight.grad = torch.ones(1, 4)
    pruner.after_optimizer_step(1, ctx)  # r_1 = 0.5625 -> topk(int(2.25) = 2) of [0, 2, 2, 4] -> keep 2 and 4s
    assert pruner.masks["lin.weight"].tolist() == [[False, True, True, True]]


def test_force_schedules_are_computed_as_force_does():
    import numpy as np

    for t in range(1, 61):
        assert exponential(0.1, t, 60) == float(np.exp(0 - (t * (0 - np.log(0.1)) / 60)))
        assert linear(0.1, t, 60) == 1 - (t * (1 - 0.1) / 60)


# --------------------------------------------------------------------------------------------------
# SEVEN's update, operation by operation as strategies/pruner.py


def test_seven_score_is_bitwise_the_codes():
    from seven_bench.pruning.criteria import Seven

    gen = torch.Generator().manual_seed(0)
    w, crit = torch.randn(64, 32, generator=gen), Seven(0.8, 0.9)
    m = v = s = torch.zeros(64, 32)
    for t in range(1, 6):
        grads = torch.randn(64, 32, generator=gen) * 1e-3
        crit.update(t, {"w": w}, {"w": grads})
        g = torch.clone(torch.abs(grads))
        m = 0.8 * m + (1 - 0.8) * torch.abs(g)
        v = 0.9 * v + (1 - 0.9) * torch.pow(g, 2)
        m_hat = m / (1 - (0.8**t))
        v_hat = torch.sqrt(v / (1 - (0.9**t))) + 1e-9
        s = s + torch.abs(w * g * m_hat / v_hat)
    assert torch.equal(crit.scores()["w"], s)


# --------------------------------------------------------------------------------------------------
# 1. GraSP weighs every example the same


class _TwoLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.a = nn.Linear(3, 4, bias=False)
        self.b = nn.Linear(4, 2, bias=False)
        with torch.no_grad():
            self.a.weight.copy_(torch.randn(4, 3, generator=gen))
            self.b.weight.copy_(torch.randn(2, 4, generator=gen))

    def forward(self, x: torch.Tensor):  # noqa: ANN201
        from types import SimpleNamespace

        return SimpleNamespace(logits=self.b(torch.tanh(self.a(x))))


def test_grasp_hessian_gradient_weighs_examples_not_sub_batches():
    model = _TwoLayer()
    ctx = PruneContext(model, dict(model.named_parameters()), iter(()), 2, 1, 0)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 3, generator=gen), torch.tensor([0, 1, 0, 1, 1])
    split = ctx.hessian_gradient([{"x": x[:4], "labels": y[:4]}, {"x": x[4:], "labels": y[4:]}], temperature=2.0)
    whole = ctx.hessian_gradient([{"x": x, "labels": y}], temperature=2.0)
    for name in whole:
        torch.testing.assert_close(split[name], whole[name], rtol=1e-5, atol=1e-7)


def test_grasp_runs_in_eval_mode_on_a_real_attention_model():
    # the fused attention kernels have no second derivative; eval mode used to crash with
    # "derivative for aten::_scaled_dot_product_flash_attention_for_cpu_backward is not implemented"
    from seven_bench.models import MODELS
    from seven_bench.tasks.base import TaskInfo

    info = TaskInfo(name="rte", modality="text", num_labels=2, reported_metric="accuracy")
    bundle = MODELS.get("tiny_bert").build(
        {
            "name": "tiny_bert",
            "hidden_size": 32,
            "num_layers": 2,
            "num_heads": 2,
            "intermediate_size": 64,
            "prune_pooler": True,
        },
        info,
        torch.device("cpu"),
    )
    gen = torch.Generator().manual_seed(0)

    def batches():
        while True:
            yield {
                "input_ids": torch.randint(5, 100, (4, 12), generator=gen),
                "attention_mask": torch.ones(4, 12, dtype=torch.long),
                "labels": torch.tensor([0, 1, 0, 1]),
            }

    ctx = PruneContext(bundle.model, bundle.prunable, batches(), 2, 1, 0)
    pruner = PRUNERS.get("grasp").build({"samples_per_class": 2, "temperature": 200, "grad_mode": "eval"}, 0.5, 0)
    pruner.prepare(ctx)
    kept = sum(int(m.sum()) for m in pruner.masks.values())
    n = sum(m.numel() for m in pruner.masks.values())
    assert kept >= n - int(n * 0.5) + 1  # GraSP's own count: n - int(n s) + 1, plus ties


# --------------------------------------------------------------------------------------------------
# 4. movement's scores are clipped with the model, as in masked_run_glue.py


class _ScoreOwner(Pruner):
    """A pruner with one extra trainable tensor whose gradient is 4 (the model's is 3): total norm 5."""

    def __init__(self) -> None:
        super().__init__(1.0)
        self.scores = nn.Parameter(torch.zeros(1))

    def param_groups(self):  # noqa: ANN201
        return [{"params": [self.scores], "lr": 1.0}]

    def extra_loss(self, ctx: PruneContext) -> torch.Tensor:
        return 4.0 * self.scores.sum()


def test_clipping_covers_what_the_optimizer_steps():
    from seven_bench.train import build_optimizer, build_scheduler, train_step

    model = ToyModel(torch.tensor([[0.0]]))
    ctx = PruneContext(model, {}, iter(()), 1, 1, 0)
    pruner = _ScoreOwner()
    settings = {"optimizer": "sgd", "lr": 1.0, "weight_decay": 0.0, "lr_schedule": "constant", "warmup_steps": 0}
    optimizer = build_optimizer(model, pruner.param_groups(), settings)
    for group in optimizer.param_groups:
        group["momentum"] = 0.0
    scheduler = build_scheduler(optimizer, settings, 1)
    # loss = 0.5 * (w x - y)^2 with x = 1, y = -3 at w = 0: dL/dw = 3; the extra term gives d/dscores = 4
    batch = {"x": torch.tensor([[1.0], [1.0]]), "labels": torch.tensor([-3.0, -3.0])}
    train_step(ctx, pruner, optimizer, scheduler, batch, 0, max_grad_norm=1.0)
    # MSE's gradient is 2 (w x - y) x = 6 for w; with the score's 4: norm sqrt(52); both scaled together
    scale = 1.0 / 52**0.5
    torch.testing.assert_close(pruner.scores.detach(), torch.tensor([-4.0 * scale]), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(model.lin.weight.detach(), torch.tensor([[-6.0 * scale]]), rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# 5. near-total collapse is reported, with wording that fits the tensor


def test_near_total_collapse_is_warned():
    per_layer = {"bert.pooler.dense.weight": 1 - 20 / 147_456, "bert.encoder.layer.0.output.dense.weight": 0.4}
    (warning,) = collapse_warnings(per_layer)
    assert warning.startswith("bert.pooler.dense.weight keeps 0.0136% of its weights")
    assert "model.prune_pooler=false" in warning


def test_dead_output_units_and_tensor_specific_wording():
    q = nn.Parameter(torch.ones(4, 8))
    masks = {"layer.0.attention.self.query.weight": torch.zeros(4, 8, dtype=torch.bool)}
    masks["layer.0.attention.self.query.weight"][0] = True  # 25% kept, but 3 of 4 units lose every input
    prunable = {"layer.0.attention.self.query.weight": q}
    dead = dead_output_units(prunable, masks)
    assert dead == {"layer.0.attention.self.query.weight": 0.75}
    (warning,) = collapse_warnings({"layer.0.attention.self.query.weight": 0.75}, dead)
    assert "75% of its output units have no input" in warning and "value path still carries" in warning
    assert (
        collapse_warnings({"layer.0.intermediate.dense.weight": 0.5}, {"layer.0.intermediate.dense.weight": 0.5}) == []
    )


# --------------------------------------------------------------------------------------------------
# the large-input global cut (tensor by tensor, global_cut.py) equals the one-buffer cut, rule by rule


@pytest.mark.parametrize("rule", ["exact", "floor", "floor_ties", "kthvalue_ties", "prune_floor"])
@pytest.mark.parametrize("ratio", [0.3, 0.61, 0.999])
def test_large_global_cut_equals_the_flat_cut(rule, ratio):
    from seven_bench.pruning.selection import _flat_scores, _split

    gen = torch.Generator().manual_seed(7)
    # 1.3M scores over three tensors, drawn from 5,000 values: heavy ties at every threshold
    scores = {
        name: torch.randint(0, 5000, shape, generator=gen).float()
        for name, shape in (("a", (700, 1000)), ("b", (300, 1000)), ("c", (1000, 300)))
    }
    eligible = {name: torch.rand(s.shape, generator=gen) > 0.2 for name, s in scores.items()}
    for allowed in (None, eligible):
        got = global_topk(scores, ratio, allowed, rule)
        flat = _flat_scores(scores, allowed, rule)
        want = _split(select_flat(flat, ratio, rule), scores)
        for name in scores:
            assert torch.equal(got[name], want[name]), (rule, ratio, name)
    if rule != "prune_floor" and ratio < 0.9:  # the bracket holds: the tensor-by-tensor path really ran
        from seven_bench.pruning.selection import _flat_part, _large_cut

        assert _large_cut([_flat_part(s, None, rule) for s in scores.values()], ratio, rule) is not None


@pytest.fixture(params=["c", "torch"])
def cut_route(request, monkeypatch):
    """Both routes of the cut's comparison pass: the C loop (where a compiler works) and torch's ops."""
    from seven_bench.pruning import ckernels

    if request.param == "torch":
        monkeypatch.setenv("SEVEN_BENCH_FUSED", "0")
    elif ckernels.kernel_name() != "fused_c":
        pytest.skip("no C compiler here")
    ckernels.library.cache_clear()
    yield request.param
    monkeypatch.delenv("SEVEN_BENCH_FUSED", raising=False)
    ckernels.library.cache_clear()


@pytest.mark.parametrize("rule", ["exact", "floor", "floor_ties", "kthvalue_ties"])
@pytest.mark.parametrize("ratio", [0.5, 0.599, 0.65])
def test_large_global_cut_with_many_pruned_entries(rule, ratio, cut_route):
    """40% already pruned (no resurrection): their fill value (0 or -inf) is the bracket's lower end, and at
    0.65 the threshold is that fill itself; the tensor-by-tensor path still runs and equals the flat cut."""
    from seven_bench.pruning.selection import _flat_scores, _large_cut, _split

    gen = torch.Generator().manual_seed(11)
    scores = {name: torch.rand(shape, generator=gen) + 0.5 for name, shape in (("a", (900, 1000)), ("b", (1000, 400)))}
    eligible = {name: torch.rand(s.shape, generator=gen) > 0.4 for name, s in scores.items()}
    got = global_topk(scores, ratio, eligible, rule)
    want = _split(select_flat(_flat_scores(scores, eligible, rule), ratio, rule), scores)
    for name in scores:
        assert torch.equal(got[name], want[name]), (rule, ratio, name)
    parts, allowed = [s.reshape(-1) for s in scores.values()], [e.reshape(-1) for e in eligible.values()]
    assert _large_cut(parts, ratio, rule, allowed) is not None


def test_large_global_cut_on_structured_scores(cut_route):
    """Scores with a per-column scale (as SEVEN's and SNIP's follow input activations), 768-wide rows: the
    bracket still holds (a strided sample saw a few columns only and missed), and the cut is the flat one."""
    from seven_bench.pruning.selection import _flat_scores, _large_cut, _split

    gen = torch.Generator().manual_seed(5)
    column_scale = torch.logspace(-3, 1, 768)[torch.randperm(768, generator=gen)]
    scores = {f"w{i}": torch.rand(768, 768, generator=gen) * column_scale for i in range(3)}
    for ratio in (0.3, 0.7):
        got = global_topk(scores, ratio, None, "exact")
        want = _split(select_flat(_flat_scores(scores, None, "exact"), ratio, "exact"), scores)
        assert all(torch.equal(got[n], want[n]) for n in scores)
        assert _large_cut([s.reshape(-1) for s in scores.values()], ratio, "exact") is not None
