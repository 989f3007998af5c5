"""Dynamic (prune-while-fine-tuning) pruners: schedules at their boundaries, scores by hand on toy layers
(SEVEN-dyn, PLATON, movement's straight-through gradient, soft movement's penalty), the regrowth /
no-resurrection semantics, and every dyn pruner end to end through the CLI path on tiny_bert."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from seven_bench.errors import UserError
from seven_bench.pruning.base import PruneContext, apply_masks_
from seven_bench.pruning.dyn import SevenDyn
from seven_bench.pruning.gmp import Gmp
from seven_bench.pruning.movement import Movement, SoftMovement, threshold_mask
from seven_bench.pruning.plans import CubicPlan, fit_warmups
from seven_bench.pruning.platon import Platon, platon_param_set
from seven_bench.pruning.schedules import cubic
from seven_bench.pruning.seven_repo import SevenRepoDyn
from tests.conftest import ToyModel, requires_shared_data


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one intra-op thread is faster, and much faster on a busy 2-core machine, where the
    default pool spin-waits (the file runs in ~15 s instead of ~75 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _ctx(model: nn.Module, prunable: dict[str, nn.Parameter], total_steps: int = 100) -> PruneContext:
    return PruneContext(model, prunable, iter(()), num_labels=2, total_steps=total_steps, seed=0)


def _toy(weight: list[list[float]]) -> tuple[ToyModel, PruneContext]:
    model = ToyModel(torch.tensor(weight))
    return model, _ctx(model, {"lin.weight": model.lin.weight})


def _set(param: nn.Parameter, data: list, grad: list) -> None:
    with torch.no_grad():
        param.copy_(torch.tensor(data, dtype=param.dtype).view_as(param))
    param.grad = torch.tensor(grad, dtype=param.dtype).view_as(param)


# --------------------------------------------------------------------------------------------------
# schedules


def test_cubic_with_warmups_boundaries():
    kw = dict(total_steps=20, initial_warmup_steps=4, final_warmup_steps=6, initial_ratio=1.0, final_ratio=0.5)
    assert cubic(0, **kw) == 1.0 and cubic(4, **kw) == 1.0  # r0 up to and including t_i
    assert cubic(5, **kw) == pytest.approx(0.5 + 0.5 * (1 - 1 / 10) ** 3)  # first ramp step
    assert cubic(9, **kw) == pytest.approx(0.5 + 0.5 * 0.5**3)  # half-way through the 10-step ramp
    assert cubic(14, **kw) == pytest.approx(0.5)  # T - t_f: the ramp's end equals r_f
    assert cubic(15, **kw) == 0.5 and cubic(20, **kw) == 0.5  # final phase
    # soft movement's threshold rises 0 -> tau_f on the same curve
    tau = dict(kw, initial_ratio=0.0, final_ratio=0.1)
    assert cubic(4, **tau) == 0.0 and cubic(9, **tau) == pytest.approx(0.1 - 0.1 * 0.5**3) and cubic(15, **tau) == 0.1
    # no warm-ups: the ramp spans the run and ends exactly at r_f
    assert cubic(
        10, total_steps=10, initial_warmup_steps=0, final_warmup_steps=0, initial_ratio=1.0, final_ratio=0.3
    ) == pytest.approx(0.3)


def test_fit_warmups_only_when_the_ramp_is_empty():
    assert fit_warmups(300, 1, 3, 4590) == 300  # PLATON's MRPC schedule fits its 10 epochs
    assert fit_warmups(300, 1, 3, 12) == 2  # 12 // (1 + 3 + 1)
    plan = CubicPlan(12, 2, 2, 6, 1.0, 0.5)
    assert plan.at(2) == 1.0 and plan.at(7) == 0.5 and 0.5 < plan.at(4) < 1.0


# --------------------------------------------------------------------------------------------------
# SEVEN-dyn


def test_seven_dyn_score_by_hand_and_no_resurrection():
    eps = 1e-9
    model, ctx = _toy([[1.0, 2.0, 3.0, 4.0]])
    w = model.lin.weight
    pruner = SevenDyn(0.5, start=0, window=4, alpha1=0.5, alpha2=0.5, eps=eps, count_rule="exact")
    pruner.prepare(ctx)
    # step 0 (t = 1): m_hat = |g|, v_hat = |g| + eps, so S = |W g| * |g| / (|g| + eps)
    _set(w, [1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0])
    pruner.after_optimizer_step(0, ctx)
    s1 = [x / (1 + eps) for x in (1.0, 2.0, 3.0, 4.0)]
    # r_0 = 0.5 + 0.5 (1 - 1/4)^3 = 0.7109 -> keep round(2.84) = 3; the pruned score is zeroed
    assert pruner.masks["lin.weight"].tolist() == [[False, True, True, True]]
    torch.testing.assert_close(pruner.criterion.state["lin.weight"].score, torch.tensor([[0.0, *s1[1:]]]))
    apply_masks_(ctx.prunable, pruner.masks)
    # step 1 (t = 2): the optimizer moved the pruned weight off zero and its gradient is huge
    _set(w, [0.5, 2.0, 3.0, 4.0], [100.0, 1.0, 2.0, 1.0])
    pruner.after_optimizer_step(1, ctx)
    # m = 0.5 m + 0.5 |g| = [50.25, .75, 1.25, .75]; m_hat = m / 0.75
    # v = 0.5 v + 0.5 g^2 = [5000.25, .75, 2.25, .75]; v_hat = sqrt(v / 0.75) + eps
    m_hat = [50.25 / 0.75, 1.0, 1.25 / 0.75, 1.0]
    v_hat = [math.sqrt(5000.25 / 0.75) + eps, 1.0 + eps, math.sqrt(3.0) + eps, 1.0 + eps]
    step = [abs(wi * gi) * mh / vh for wi, gi, mh, vh in zip([0.5, 2, 3, 4], [100, 1, 2, 1], m_hat, v_hat)]
    # S = [0, s1 + step] = [0, ~4, ~8.77, ~8]; r_1 = 0.5625 -> keep 2: entry 1 is cut (its S zeroed) and
    # the huge-gradient entry 0 is never chosen again
    expected = [0.0, 0.0, s1[2] + step[2], s1[3] + step[3]]
    torch.testing.assert_close(pruner.criterion.state["lin.weight"].score, torch.tensor([expected]))
    assert pruner.masks["lin.weight"].tolist() == [[False, False, True, True]]
    apply_masks_(ctx.prunable, pruner.masks)
    assert w.tolist() == [[0.0, 0.0, 3.0, 4.0]]


# --------------------------------------------------------------------------------------------------
# PLATON


def test_platon_ibar_ubar_after_two_windows_by_hand():
    model, ctx = _toy([[1.0, 2.0]])
    w = model.lin.weight
    pruner = Platon(0.5, warmup_steps=50, initial_warmup=1, final_warmup=1, beta1=0.85, beta2=0.95, delta_t=2)
    pruner.prepare(ctx)
    # MT-DNN counts t = step + 1: windows close at t = 2 and t = 4
    for step, grad in enumerate(([1.0, 1.0], [2.0, 0.0], [0.0, 2.0], [5.0, 5.0])):
        _set(w, [1.0, 2.0], grad)
        pruner.after_optimizer_step(step, ctx)
        assert pruner.masks is None  # still inside the initial warm-up: no mask
    # t=1: ipt = (0 + I1) / 2 = [.5, 1]
    # t=2: Ibar = .15 [.5, 1] = [.075, .15];  Ubar = .05 |[.5, 1] - Ibar| = [.02125, .0425];  ipt = I2 = [2, 0]
    # t=3: ipt = (I2 + I3) / 2 = ([2, 0] + [0, 4]) / 2 = [1, 2]
    # t=4: Ibar = .85 [.075, .15] + .15 [1, 2] = [.21375, .4275]
    #      Ubar = .95 [.02125, .0425] + .05 |[1, 2] - [.21375, .4275]| = [.0595, .119];  ipt = I4 = [5, 10]
    torch.testing.assert_close(pruner.exp_avg_ipt["lin.weight"], torch.tensor([[0.21375, 0.4275]]))
    torch.testing.assert_close(pruner.exp_avg_unc["lin.weight"], torch.tensor([[0.0595, 0.119]]))
    torch.testing.assert_close(pruner.ipt["lin.weight"], torch.tensor([[5.0, 10.0]]))
    torch.testing.assert_close(pruner.scores()["lin.weight"], torch.tensor([[0.21375 * 0.0595, 0.4275 * 0.119]]))


def test_platon_masks_only_on_its_schedule_and_regrows():
    # t_i = 1, t_f = 10 of 10 steps: every step after the first is in the final phase (mask every step)
    model, ctx = _toy([[1.0, 2.0, 3.0, 4.0]])
    ctx.total_steps = 10
    w = model.lin.weight
    pruner = Platon(
        0.5, warmup_steps=1, initial_warmup=1, final_warmup=10, beta1=0.0, beta2=1.0, delta_t=1, count_rule="exact"
    )
    pruner.prepare(ctx)  # beta1 = 0, beta2 = 1: the score is the previous step's |W g|
    _set(w, [1, 2, 3, 4], [1, 1, 1, 1])
    pruner.after_optimizer_step(0, ctx)
    assert pruner.masks is None
    _set(w, [1, 2, 3, 4], [1, 1, 1, 1])
    pruner.after_optimizer_step(1, ctx)
    assert pruner.masks["lin.weight"].tolist() == [[False, False, True, True]]
    assert w.tolist() == [[0.0, 0.0, 3.0, 4.0]]  # zeroed like p.data.masked_fill_
    # the optimizer moves the zeroed weight 0 and its gradient is large: its score rises ...
    _set(w, [0.5, 0.0, 3.0, 4.0], [100.0, 1.0, 0.01, 1.0])
    pruner.after_optimizer_step(2, ctx)
    assert pruner.masks["lin.weight"].tolist() == [[False, False, True, True]]
    _set(w, [0.5, 0.0, 3.0, 4.0], [100.0, 1.0, 0.01, 1.0])
    pruner.after_optimizer_step(3, ctx)
    # ... and it is selected again (regrowth), with the value it grew back to
    assert pruner.masks["lin.weight"].tolist() == [[True, False, False, True]]
    assert w.tolist() == [[0.5, 0.0, 0.0, 4.0]]
    # inside the ramp, masks are recomputed only every deltaT steps and are None in between
    ramp = Platon(0.5, warmup_steps=1, initial_warmup=1, final_warmup=1, beta1=0.85, beta2=0.85, delta_t=2)
    model2, ctx2 = _toy([[1.0, 2.0, 3.0, 4.0]])
    ramp.prepare(ctx2)
    seen = []
    for step in range(6):
        _set(model2.lin.weight, [1, 2, 3, 4], [1, 2, 1, 2])
        ramp.after_optimizer_step(step, ctx2)
        seen.append(ramp.masks is not None)
    assert seen == [False, True, False, True, False, True]  # t = 2, 4, 6


def test_platon_own_prunable_set_on_bert_names():
    from transformers import BertConfig, BertForSequenceClassification

    model = BertForSequenceClassification(
        BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    )
    names = set(platon_param_set(model))
    assert "bert.encoder.layer.0.attention.self.query.bias" in names
    assert (
        "bert.encoder.layer.0.output.dense.weight" in names
        and "bert.encoder.layer.0.attention.output.dense.bias" in names
    )
    assert not any("pooler" in n or "LayerNorm" in n or "embeddings" in n or "classifier" in n for n in names)
    assert len(names) == 12  # 6 modules x (weight, bias)
    with pytest.raises(UserError):
        Platon(0.5, 1, 1, 1, 0.85, 0.85, 10, prunable_set="platon").prepare(_toy([[1.0]])[1])


# --------------------------------------------------------------------------------------------------
# movement


def test_movement_ste_gradient_by_hand_and_parametrization():
    model, ctx = _toy([[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]])
    w = model.lin.weight
    pruner = Movement(0.5, warmup_steps=0, initial_warmup=0, final_warmup=0)
    pruner.prepare(ctx)
    assert model.lin.parametrizations.weight.original is w  # the prunable Parameter is the same object
    with torch.no_grad():
        pruner.scores["lin.weight"].copy_(torch.tensor([[0.3, 0.1, 0.6], [0.5, 0.2, 0.4]]))
    pruner.step_value = 0.5  # TopK keeps int(0.5 * 6) = 3: scores .6, .5, .4
    x = torch.tensor([[1.0, 2.0, 3.0], [1.0, 0.0, -1.0]])
    c = torch.tensor([[1.0, -1.0], [2.0, 1.0]])
    (model(x).logits * c).sum().backward()
    # dL/d(W*M) = c^T x = [[3, 2, 1], [0, -2, -4]]; M = [[0, 0, 1], [1, 0, 1]]
    # STE: dL/dS = dL/d(W*M) * W = [[3, -4, 3], [0, -10, 24]];  dL/dW = dL/d(W*M) * M = [[0, 0, 1], [0, 0, -4]]
    torch.testing.assert_close(pruner.scores["lin.weight"].grad, torch.tensor([[3.0, -4.0, 3.0], [0.0, -10.0, 24.0]]))
    torch.testing.assert_close(w.grad, torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -4.0]]))
    torch.testing.assert_close(model.lin.weight, torch.tensor([[0.0, 0.0, 3.0], [4.0, 0.0, -6.0]]))
    assert pruner.masks is None  # pruned weights keep their values during training (masked in the forward)
    assert w.tolist() == [[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]]
    apply_masks_(ctx.prunable, {"lin.weight": torch.tensor([[True, True, True], [True, True, False]])})
    assert w[1, 2].item() == 0.0  # the trainer's in-place masking still reaches the real weight
    # the bake: final TopK at r_f, weights zeroed in place, parametrization gone, same Parameter
    masks = pruner.finalize(ctx)
    assert masks["lin.weight"].tolist() == [[False, False, True], [True, False, True]]
    assert pruner.masks is masks and model.lin.weight is w and not hasattr(model.lin, "parametrizations")
    assert w.tolist() == [[0.0, 0.0, 3.0], [4.0, 0.0, 0.0]]


def test_movement_eval_uses_final_ratio_and_global_threshold():
    model, ctx = _toy([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    pruner = Movement(0.25, warmup_steps=0, initial_warmup=0, final_warmup=0)
    pruner.prepare(ctx)
    with torch.no_grad():
        pruner.scores["lin.weight"].copy_(torch.tensor([[4.0, 3.0, 2.0, 1.0], [8.0, 7.0, 6.0, 5.0]]))
    pruner.step_value = 1.0
    assert torch.equal(model.lin.weight, ctx.prunable["lin.weight"])  # training forward at r = 1
    model.eval()  # evaluation forward uses r_f = 0.25 -> 2 of 8 kept
    assert int((model.lin.weight != 0).sum()) == 2
    glob = Movement(0.25, warmup_steps=0, initial_warmup=0, final_warmup=0, selection="global")
    model2, ctx2 = _toy([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    glob.prepare(ctx2)
    with torch.no_grad():
        glob.scores["lin.weight"].copy_(torch.arange(8.0).view(2, 4))
    glob._begin_step(10)  # r = .25 + .75 * .9^3 = .797 < 1: the held score threshold is computed
    # the original's kth = n - (int(n r) + 1): keeps int(n r) + 1 entries
    kept = int(threshold_mask(glob.scores["lin.weight"], glob.global_threshold, False).sum())
    assert kept == int(8 * glob.step_value) + 1


def test_soft_movement_penalty_and_mask_by_hand():
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(2, 2, bias=False)
            self.b = nn.Linear(2, 1, bias=False)

    model = Two()
    ctx = _ctx(model, {"a.weight": model.a.weight, "b.weight": model.b.weight})
    pruner = SoftMovement(
        0.5, warmup_steps=0, initial_warmup=0, final_warmup=0, final_threshold=0.1, final_lambda=400.0
    )
    pruner.prepare(ctx)
    with torch.no_grad():
        pruner.scores["b.weight"].copy_(torch.full((1, 2), math.log(3.0)))  # sigmoid = 0.75
    pruner.step_value = 0.05  # tau_t = 0.05 -> lambda_t = 400 * 0.05 / 0.1 = 200
    # mean over tensors of ||sigmoid(S)||_1 / numel = (4 * 0.5 / 4 + 2 * 0.75 / 2) / 2 = 0.625
    assert pruner.extra_loss(ctx).item() == pytest.approx(200.0 * 0.625)
    pruner.extra_loss(ctx).backward()  # the penalty reaches S directly: 200 * sigmoid'(S) / numel / 2
    torch.testing.assert_close(pruner.scores["a.weight"].grad, torch.full((2, 2), 200 * 0.25 / 4 / 2))
    # sigmoid(S) > tau, but at least int(0.005 n) + 1 entries survive
    s = torch.tensor([-1.0, -2.0, -4.0, -5.0])  # sigmoid = .269, .119, .018, .007
    assert threshold_mask(s, 0.1, True).tolist() == [True, True, False, False]
    assert threshold_mask(s, 0.5, True).tolist() == [True, False, False, False]  # floor: the single largest


def test_seven_repo_variants_keep_masks_and_rank_by_w_g():
    model, ctx = _toy([[1.0, 2.0, 3.0, 4.0]])
    w = model.lin.weight
    pruner = SevenRepoDyn("movement", 0.5, start=0, window=3)
    pruner.prepare(ctx)
    _set(w, [1, 2, 3, 4], [4, 3, 0.1, 1])  # |W g| = [4, 6, .3, 4]
    pruner.after_optimizer_step(0, ctx)  # r_0 = .5 + .5 (2/3)^3 = .648 -> keep 3
    assert pruner.masks["lin.weight"].tolist() == [[True, True, False, True]]
    apply_masks_(ctx.prunable, pruner.masks)
    _set(w, [1, 2, 0.2, 4], [0.1, 3, 1000, 1])  # the pruned entry cannot come back
    pruner.after_optimizer_step(1, ctx)  # r_1 = .5 + .5 (1/3)^3 -> keep 2: |W g| = [.1, 6, -, 4]
    assert pruner.masks["lin.weight"].tolist() == [[False, True, False, True]]
    # PLATON as the SEVEN repo writes it: m, v EMAs of |W g|, score m * v
    platon = SevenRepoDyn("platon", 0.5, start=0, window=10, alpha1=0.8, alpha2=0.9)
    model2, ctx2 = _toy([[1.0, 2.0]])
    platon.prepare(ctx2)
    _set(model2.lin.weight, [1, 2], [1, 1])
    platon.after_optimizer_step(0, ctx2)
    m = [0.2 * 1, 0.2 * 2]
    v = [0.1 * abs(1 - m[0]), 0.1 * abs(2 - m[1])]
    torch.testing.assert_close(platon.m["lin.weight"], torch.tensor([m]))
    torch.testing.assert_close(platon.v["lin.weight"], torch.tensor([v]))


def test_seven_repo_soft_movement_penalty_is_second_order():
    model, ctx = _toy([[1.0, -2.0]])
    pruner = SevenRepoDyn("soft_movement", 0.5, start=0, window=4)
    pruner.prepare(ctx)
    x = torch.tensor([[1.0, 3.0]])
    ctx.step_loss = (model(x).logits ** 2).sum()  # L = (w.x)^2 = 25, g = 2 (w.x) x = [-10, -30]
    extra = pruner.extra_loss(ctx)
    # r_0 * (sigmoid(g1 w1) + sigmoid(g2 w2)) / 2 with g * w = [-10, 60]
    r0 = 0.5 + 0.5 * (1 - 1 / 4) ** 3
    expected = r0 * (1 / (1 + math.exp(10.0)) + 1 / (1 + math.exp(-60.0))) / 2
    assert extra.item() == pytest.approx(expected)
    assert extra.requires_grad  # differentiable through g (create_graph)
    torch.testing.assert_close(pruner._task_grads["lin.weight"], torch.tensor([[-10.0, -30.0]]))


def test_gmp_reaches_the_target_exactly_and_never_regrows():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 16), nn.Linear(16, 8))
    prunable = {"0.weight": model[0].weight, "1.weight": model[1].weight}
    ctx = _ctx(model, prunable, total_steps=20)
    pruner = Gmp(0.3, warmup_steps=2, initial_warmup=1, final_warmup=2)
    pruner.prepare(ctx)
    previous = {n: m.clone() for n, m in pruner.masks.items()}
    for step in range(20):
        with torch.no_grad():
            for p in prunable.values():
                p.add_(0.05 * torch.randn_like(p))  # an "optimizer step"
        pruner.after_optimizer_step(step, ctx)
        apply_masks_(prunable, pruner.masks)
        for n, m in pruner.masks.items():
            assert not (m & ~previous[n]).any()  # masks only shrink
        previous = {n: m.clone() for n, m in pruner.masks.items()}
    kept = sum(int(m.sum()) for m in pruner.masks.values())
    assert kept == round(0.3 * (256 + 128))
    assert sum(int((p != 0).sum()) for p in prunable.values()) == kept
    assert pruner.trajectory[-1]["target_keep"] == pytest.approx(0.3)


def test_missing_per_task_schedule_is_a_user_error():
    with pytest.raises(UserError, match="pruner.warmup_steps"):
        Gmp(0.5, warmup_steps=-1, initial_warmup=1, final_warmup=2)
    with pytest.raises(UserError, match="pruner.start"):
        SevenRepoDyn("platon", 0.5, start=-1, window=-1)


def test_movement_on_tiny_clip_packed_in_proj_weight():
    """CLIP's visual tower: nn.MultiheadAttention.in_proj_weight is parametrized like a Linear weight."""
    pytest.importorskip("open_clip")
    import yaml

    from seven_bench.models import MODELS
    from seven_bench.tasks import TASKS
    from tests.test_clip import CONF

    cfg = yaml.safe_load((CONF / "tiny_clip.yaml").read_text())
    bundle = MODELS.get("tiny_clip").build(cfg, TASKS.get("mnist").info, torch.device("cpu"))
    ctx = _ctx(bundle.model, bundle.prunable, total_steps=3)
    pruner = Movement(0.5, warmup_steps=0, initial_warmup=0, final_warmup=0)
    pruner.prepare(ctx)
    opt = torch.optim.AdamW(
        [p for p in bundle.model.parameters() if p.requires_grad] + pruner.param_groups()[0]["params"]
    )
    x = torch.randn(4, 3, 32, 32)
    for step in range(3):
        out = bundle.model(pixel_values=x, labels=torch.tensor([0, 1, 2, 3]))
        out.loss.backward()
        assert all(s.grad is not None for s in pruner.scores.values())
        opt.step()
        pruner.after_optimizer_step(step, ctx)
        opt.zero_grad()
    assert pruner.finalized
    for _name, p in bundle.prunable.items():
        assert int((p != 0).sum()) == int(0.5 * p.numel())  # per-tensor TopK, baked into the real weights
    assert any(n.endswith("in_proj_weight") for n in bundle.prunable)


# --------------------------------------------------------------------------------------------------
# end to end on tiny_bert (the CLI's path, in process: compose -> build_spec -> run_cell)

SMOKE = [
    "model=tiny_bert",
    "task=mrpc",
    "sparsity=0.5",
    "trainer.max_steps=12",
    "trainer.epochs=1",
    "task.max_train_examples=200",
    "task.max_eval_examples=64",
    "progress=false",
]
CELLS = {
    "seven_dyn": ["pruner.fit_schedule=true"],
    "platon": ["pruner.fit_schedule=true"],
    "movement": ["pruner.fit_schedule=true"],
    # sparsity is indirect: tau_f = 0.5 with no penalty keeps the scores that rose (about half)
    "soft_movement": ["pruner.fit_schedule=true", "pruner.final_threshold=0.5", "pruner.final_lambda=0"],
    "gmp": ["pruner.fit_schedule=true"],
}


@requires_shared_data()
@pytest.mark.parametrize("name", list(CELLS))
def test_dyn_pruner_end_to_end_on_tiny_bert(name, tmp_path):

    from seven_bench.conf import compose_config
    from seven_bench.run import run_cell
    from seven_bench.spec import build_spec

    cfg = compose_config([*SMOKE, f"pruner={name}", *CELLS[name], f"results_dir={tmp_path}"])
    spec = build_spec(cfg)
    record = run_cell(spec, tmp_path)
    assert record["status"] == "ok", record.get("error")
    sparsity = record["sparsity"]
    one_weight = 1.0 / sparsity["prunable_weights"]
    assert sparsity["pruned_but_nonzero"] == 0
    if name == "soft_movement":
        assert 0.3 < sparsity["achieved"] < 0.7
        assert record["pruner"]["achieved_sparsity"] == pytest.approx(sparsity["achieved"])
    elif name == "seven_dyn":
        assert abs(sparsity["achieved"] - 0.5) < 0.005  # the code's cubic stops (1/T)^3 short
    else:  # PLATON's own cut keeps one more than round(r n): one weight (plus float noise)
        assert abs(sparsity["achieved"] - 0.5) <= one_weight * (1 + 1e-9)
    trajectory = record["pruner"]["trajectory"]
    assert trajectory and {"step", "target_keep", "achieved_keep"} <= set(trajectory[-1])
    if name != "seven_dyn":
        assert record["pruner"]["variant"] == record["spec"]["pruner"]["variant"] == "original"
    if name in ("platon", "movement", "soft_movement", "gmp"):
        assert record["spec"]["trainer"]["recipe"].startswith(name)  # the method's own recipe (overlay)


def test_seven_repo_variant_resolves_from_the_yaml_tables():

    from seven_bench.conf import compose_config
    from seven_bench.spec import build_spec

    cfg = compose_config([*SMOKE, "pruner=platon", "pruner.variant=seven_repo", "trainer.recipe=seven_dyn"])
    own = compose_config([*SMOKE, "pruner=platon", "task=qnli"])
    spec = build_spec(cfg)
    assert spec.pruner["variant"] == "seven_repo"
    assert (spec.pruner["start"], spec.pruner["window"]) == (300, 600)  # seven_dyn's Table B3 row for MRPC
    assert spec.trainer["recipe"].startswith("seven_dyn") and spec.trainer["optimizer"] == "adamw"
    from omegaconf import OmegaConf

    from seven_bench.spec import resolve_pruner

    hp, trainer = resolve_pruner(OmegaConf.to_container(own.pruner), "qnli")  # PLATON's own QNLI script
    assert (hp["warmup_steps"], hp["final_warmup"], hp["beta2"], hp["window"]) == (2000, 6, 0.9, 12000)
    assert trainer["optimizer"] == "adamax" and trainer["lr"] == 1e-4 and trainer["warmup_steps"] == 3274
    hp, trainer = resolve_pruner(OmegaConf.to_container(own.pruner), "mnist")  # no PLATON numbers for CLIP
    assert hp["warmup_steps"] == -1 and trainer is None


def test_trainer_hands_the_step_loss_to_the_seven_repo_soft_movement():
    """The SEVEN repo's soft movement differentiates its penalty through the task gradient: the trainer's
    step must expose the task loss (PruneContext.step_loss) to extra_loss, and add the penalty."""
    from seven_bench.train import build_optimizer, build_scheduler, train_step

    model, ctx = _toy([[1.0, -2.0], [0.5, 3.0]])
    ctx.total_steps = 3
    pruner = SevenRepoDyn("soft_movement", 0.5, start=0, window=4)
    pruner.prepare(ctx)
    settings = dict(optimizer="adamw", lr=1e-3, weight_decay=0.0, betas=[0.9, 0.999], lr_schedule="constant")
    opt = build_optimizer(model, pruner.param_groups(), settings)
    sched = build_scheduler(opt, settings, ctx.total_steps)
    batch = {"x": torch.tensor([[1.0, 3.0], [2.0, -1.0]]), "labels": torch.tensor([0, 1])}
    for step in range(3):
        train_step(ctx, pruner, opt, sched, batch, step, None)
        assert ctx.step_loss is None  # handed over for extra_loss only
    assert pruner.penalty_steps == 3
    assert [round(p["target_keep"], 6) for p in pruner.trajectory] == [
        round(0.5 + 0.5 * (1 - k / 4) ** 3, 6) for k in (1, 2, 3)
    ]
    assert int(pruner.masks["lin.weight"].sum()) == 2  # round(0.5078 * 4)
