"""DSP (differentiable subset pruning of heads): the Gumbel soft top-K gate, the temperature curve, the
budget rule, the head gate on BERT (SDPA) and CLIP heads, exact head removal by element masks, the
search's decision, and CLI cells in joint and pipelined mode."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
import yaml
from torch import nn

from seven_bench.errors import UserError
from seven_bench.pruning.base import PruneContext, pruned_but_nonzero
from seven_bench.pruning.dsp import DSP, gumbel_soft_top_k, heads_budget, ste_top_k, temperature, top_k_heads
from seven_bench.pruning.head_gates import HeadGates, find_attention_layers, head_element_masks
from seven_bench.recipes import RECIPES
from seven_bench.train import build_optimizer, build_scheduler, train_step
from tests.conftest import REPO, ToyModel, requires_shared_data


def _tiny_bert(value_bias: bool = True) -> nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
    )
    model = BertForSequenceClassification(config).eval()
    if value_bias:  # HF initialises biases to 0; a head's value bias is what q/k/v-row zeroing leaves behind
        with torch.no_grad():
            for layer in model.bert.encoder.layer:
                layer.attention.self.value.bias.normal_(0, 0.5)
    return model


def _prunable(model: nn.Module) -> dict[str, nn.Parameter]:
    from seven_bench.models.text import text_prunable

    return text_prunable(model, include_pooler=True)


def _batch(rows: int = 4, seed: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    mask = torch.ones(rows, 12, dtype=torch.long)
    mask[0, 8:] = 0
    return {
        "input_ids": torch.randint(0, 50, (rows, 12), generator=gen),
        "attention_mask": mask,
        "labels": torch.randint(0, 2, (rows,), generator=gen),
    }


def _logits(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


# ------------------------------------------------------------------------------------------ the gate
def test_soft_top_k_by_hand_and_hard_at_low_temperature() -> None:
    # w = log(1, 2, 3), tau 1, K 2, no noise: p1 = (1, 2, 3)/6; r += log(1 - p1) -> (5/6, 8/6, 9/6): p2 = (5, 8, 9)/22
    w = torch.log(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    gate = gumbel_soft_top_k(w, 2, 1.0, noise=False)
    expected = torch.tensor([1 / 6 + 5 / 22, 2 / 6 + 8 / 22, 3 / 6 + 9 / 22], dtype=torch.float64)
    torch.testing.assert_close(gate, expected, rtol=0, atol=1e-12)
    assert float(gate.sum()) == pytest.approx(2.0, abs=1e-12)

    w = torch.tensor([0.3, -1.2, 2.0, 0.7, 0.1], dtype=torch.float64)
    hard = gumbel_soft_top_k(w, 2, 1e-8, noise=False)
    assert hard.tolist() == [0.0, 0.0, 1.0, 1.0, 0.0]
    # with noise (fixed seed) at tau 1e-8: the hard top-2 of w + the same Gumbel draw
    gen = torch.Generator().manual_seed(3)
    u = torch.rand(5, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + torch.finfo(torch.double).tiny
    r = w - torch.log(-torch.log(u))
    noisy = gumbel_soft_top_k(w, 2, 1e-8, generator=gen)
    assert noisy.tolist() == top_k_heads(r, 2).double().tolist() and float(noisy.sum()) == 2.0
    # hot: every head near K/n, the sum still K
    hot = gumbel_soft_top_k(w, 2, 1000.0, generator=torch.Generator().manual_seed(0))
    assert float(hot.sum()) == pytest.approx(2.0, abs=1e-9) and torch.allclose(
        hot, torch.full((5,), 0.4, dtype=torch.float64), atol=5e-3
    )


def test_straight_through_top_k() -> None:
    w = torch.tensor([0.3, -1.2, 2.0, 0.7, 0.1], dtype=torch.float64, requires_grad=True)
    gate = ste_top_k(w, 3)
    assert gate.tolist() == [1.0, 0.0, 1.0, 1.0, 0.0]
    (gate * torch.arange(5.0, dtype=torch.float64)).sum().backward()
    assert w.grad.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]  # identity backward


def test_temperature_curve() -> None:
    # tau_t = exp(ln 1000 - t/100 (ln 1000 - ln 1e-8)): 10^(3 - 11 t / 100)
    assert temperature(0, 1000, 1e-8, 100) == pytest.approx(1000.0)
    assert temperature(25, 1000, 1e-8, 100) == pytest.approx(10**0.25)
    assert temperature(50, 1000, 1e-8, 100) == pytest.approx(10**-2.5)
    assert temperature(100, 1000, 1e-8, 100) == pytest.approx(1e-8)
    assert temperature(101, 1000, 1e-8, 100) == 1e-8 and temperature(5000, 1000, 1e-8, 100) == 1e-8
    assert temperature(10, 1000, 1e-8, 100, annealing=False) == 1e-8


def test_budget_rounding() -> None:
    assert heads_budget(72, 0.5) == 36
    assert heads_budget(144, 0.7) == 101  # 100.8
    assert heads_budget(12, 0.625) == 8  # 7.5: half up
    assert heads_budget(144, 1 - 0.3) == 101  # float noise in 1 - 0.3 does not move the rounding
    assert heads_budget(4, 0.5, heads_kept=3) == 3  # heads_kept wins over sparsity
    with pytest.raises(UserError, match="keep 0 of the model's 4"):
        heads_budget(4, 0.1)
    with pytest.raises(UserError, match="heads_kept"):
        heads_budget(4, 0.5, heads_kept=5)


# ------------------------------------------------------------------------------- gating the model
def test_gate_zero_equals_zeroed_output_columns_and_gates_probabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers.models.bert import modeling_bert

    model = _tiny_bert()
    assert model.config._attn_implementation == "sdpa"
    batch = _batch()
    dense = _logits(model, batch)
    layers = find_attention_layers(model, _prunable(model))
    assert [(la.num_heads, la.head_dim, la.weights_per_head) for la in layers] == [(2, 16, 2048)] * 2
    gate = torch.tensor([[1.0, 0.0], [0.3, 1.0]], dtype=torch.float64)

    reference = copy.deepcopy(model)  # head 1 of layer 0 removed by its W_o columns; layer 1 gated on the probs
    with torch.no_grad():
        reference.bert.encoder.layer[0].attention.output.dense.weight[:, 16:] = 0
    reference.set_attn_implementation("eager")
    index = {id(layer.attention.self): i for i, layer in enumerate(reference.bert.encoder.layer)}
    original = modeling_bert.eager_attention_forward

    def gated_probs(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kw):
        scores = torch.matmul(query, key.transpose(2, 3)) * scaling + attention_mask
        probs = torch.softmax(scores, dim=-1)
        if index[id(module)] == 1:
            probs = probs * gate[1].float()[None, :, None, None]  # the original: attention_probs * gate
        return torch.matmul(probs, value).transpose(1, 2).contiguous(), probs

    monkeypatch.setattr(modeling_bert, "eager_attention_forward", gated_probs)
    expected = _logits(reference, batch)
    monkeypatch.setattr(modeling_bert, "eager_attention_forward", original)

    gates = HeadGates(model, layers, lambda training: gate)
    gates.install()
    gated = _logits(model, batch)  # still SDPA
    torch.testing.assert_close(gated, expected, rtol=0, atol=1e-6)
    assert (gated - dense).abs().max() > 1e-3  # the gate changes the output
    weight = model.bert.encoder.layer[0].attention.output.dense.parametrizations.weight.original
    gates.remove()
    assert model.bert.encoder.layer[0].attention.output.dense.weight is weight  # the same Parameter back
    torch.testing.assert_close(_logits(model, batch), dense, rtol=0, atol=0)


def test_clip_head_gate_equals_zeroed_out_proj_columns() -> None:
    from seven_bench.models import MODELS
    from seven_bench.tasks import TASKS

    cfg = yaml.safe_load((REPO / "conf" / "model" / "tiny_clip.yaml").read_text())
    bundle = MODELS.get("tiny_clip").build(cfg, TASKS.get("mnist").info, torch.device("cpu"))
    model = bundle.model.eval()
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    layers = find_attention_layers(model, bundle.prunable)
    assert [(la.name, la.num_heads, la.head_dim) for la in layers] == [
        (f"visual.transformer.resblocks.{i}.attn", 2, 32) for i in range(2)
    ]
    reference = copy.deepcopy(model)
    with torch.no_grad():
        reference.visual.transformer.resblocks[1].attn.out_proj.weight[:, :32] = 0
    gates = HeadGates(model, layers, lambda training: torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
    gates.install()
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).logits, reference(pixels).logits, rtol=0, atol=1e-6)
    gates.remove()


def test_element_masks_remove_heads_exactly() -> None:
    model = _tiny_bert()
    prunable = _prunable(model)
    layers = find_attention_layers(model, prunable)
    keep = torch.tensor([[True, False], [False, True]])
    masks = head_element_masks(layers, prunable, keep)
    removed = {n: int((~m).sum()) for n, m in masks.items() if (~m).any()}
    # one head: 16 rows x 32 of each of q, k, v and 32 x 16 columns of W_o
    assert removed == {
        f"bert.encoder.layer.{i}.attention.{t}.weight": 512
        for i in (0, 1)
        for t in ("self.query", "self.key", "self.value", "output.dense")
    }
    assert not masks["bert.encoder.layer.0.attention.self.value.weight"][16:].any()
    assert not masks["bert.encoder.layer.1.attention.output.dense.weight"][:, :16].any()
    batch = _batch()
    gated = copy.deepcopy(model)
    g = HeadGates(gated, find_attention_layers(gated, _prunable(gated)), lambda training: keep.double())
    g.install()
    masked = copy.deepcopy(model)
    with torch.no_grad():
        for name, param in _prunable(masked).items():
            param.mul_(masks[name])
    torch.testing.assert_close(_logits(masked, batch), _logits(gated, batch), rtol=0, atol=1e-6)
    qkv_only = copy.deepcopy(model)  # zeroing only q/k/v rows leaves the value bias flowing through W_o
    with torch.no_grad():
        for name, param in _prunable(qkv_only).items():
            if "output.dense" not in name:
                param.mul_(masks[name])
    assert (_logits(qkv_only, batch) - _logits(gated, batch)).abs().max() > 1e-4


# ------------------------------------------------------------------------------------- the search
def _ctx(model: nn.Module, total_steps: int, steps_per_epoch: int = 0) -> PruneContext:
    batches = itertools.cycle([_batch(seed=s) for s in range(3)])
    settings = {**RECIPES["bert_pre"], "max_steps": None}
    return PruneContext(
        model, _prunable(model), batches, 2, total_steps, seed=0, settings=settings, steps_per_epoch=steps_per_epoch
    )


def _fit(ctx: PruneContext, pruner: DSP) -> None:
    settings = ctx.settings
    opt = build_optimizer(ctx.model, pruner.param_groups(), settings)
    sched = build_scheduler(opt, settings, ctx.total_steps)
    ctx.model.train()
    for step in range(ctx.total_steps):
        train_step(ctx, pruner, opt, sched, next(ctx.batches), step, 1.0)


def test_joint_search_decides_top_k_and_masks_agree() -> None:
    model = _tiny_bert()
    ctx = _ctx(model, total_steps=4)
    pruner = DSP(0.5, seed=0)
    pruner.prepare(ctx)
    start = pruner.w.detach().clone()
    assert pruner.k == 2 and pruner.cooldown == round(0.679 * 4) and pruner.param_groups()[0]["lr"] == 0.5
    before = model.bert.encoder.layer[1].intermediate.dense.weight.detach().clone()
    _fit(ctx, pruner)
    assert pruner.decided and not (pruner.w.detach() == start).all()  # the logits learned
    assert not (model.bert.encoder.layer[1].intermediate.dense.weight == before).all()  # so did the model
    assert pruner.keep.tolist() == top_k_heads(pruner.w, 2).tolist() and int(pruner.keep.sum()) == 2
    assert not any(hasattr(la.out_module, "parametrizations") for la in pruner.layers)  # gates off
    assert pruned_but_nonzero(ctx.prunable, pruner.masks) == 0
    summary = pruner.summary()
    assert summary["heads_kept"] == 2 and summary["head_sparsity"] == 0.5
    assert pruner.steps_before_finetune() == 0  # the joint search is the fine-tune
    assert summary["param_sparsity_equivalent"] == pytest.approx(2 * 2048 / (2 * 8192 + 1024))
    assert [s for s, _ in summary["temperature"]["trajectory"]] == [0, 1, 2, 3]
    assert summary["temperature"]["trajectory"][0][1] == pytest.approx(1000.0)


def test_pipelined_trains_only_logits_for_its_epochs(monkeypatch: pytest.MonkeyPatch) -> None:
    from seven_bench.pruning import dsp_phases

    model = _tiny_bert()
    ctx = _ctx(model, total_steps=2, steps_per_epoch=3)
    pruner = DSP(0.75, seed=0, mode="pipelined", gate="ste")
    tuned: dict[int, torch.Tensor] = {}
    real_search = dsp_phases.search_in_prepare

    def search(p: DSP, c: PruneContext) -> None:  # after the dense fine-tune, before the logits-only search
        assert p.k == 3 and not any(q.requires_grad for q in model.parameters())
        tuned.update({id(q): q.detach().clone() for q in model.parameters()})
        start = p.w.detach().clone()
        real_search(p, c)
        assert not torch.equal(p.w.detach(), start)  # the logits learned

    monkeypatch.setattr("seven_bench.pruning.dsp.search_in_prepare", search)
    pruner.prepare(ctx)  # 2 dense fine-tune steps, then 3 (one epoch) logit steps; the cell does not fine-tune
    assert pruner.facts["dense_finetune"]["steps"] == 2 and pruner.search_steps == 3 and ctx.total_steps == 2
    assert pruner.steps_before_finetune() == 2 + 3  # the dense fine-tune, then the search
    assert pruner.decided and not pruner.fine_tune and pruner.param_groups() == []
    assert all(p.requires_grad for p in model.parameters())
    masks = {id(p): pruner.masks[n] for n, p in ctx.prunable.items()}
    for param in model.parameters():  # the search moved no weight; the decision zeroed the removed heads
        expected = tuned[id(param)] * masks[id(param)] if id(param) in masks else tuned[id(param)]
        torch.testing.assert_close(param.detach(), expected, rtol=0, atol=0)


def test_joint_search_resumes_bit_for_bit(tmp_path) -> None:
    from seven_bench import train
    from seven_bench.checkpoints import Checkpointer

    class Killed(Exception):
        pass

    def run(folder, kill_at: int | None = None) -> dict[str, torch.Tensor]:
        model = _tiny_bert()
        ctx = _ctx(model, total_steps=8)
        pruner = DSP(0.5, seed=0)
        pruner.prepare(ctx)
        loader = [_batch(seed=s) for s in range(4)]
        real = train.train_step

        def step(*args, **kwargs):
            if kill_at is not None and args[5] == kill_at:
                raise Killed
            return real(*args, **kwargs)

        train.train_step = step
        try:
            settings = {**ctx.settings, "epochs": 2}
            train.fit(ctx, pruner, loader, settings, lambda: {}, False, Checkpointer(folder, 3))
        finally:
            train.train_step = real
        assert pruner.decided
        return {"w": pruner.w.detach().clone(), **{n: p.detach().clone() for n, p in ctx.prunable.items()}}

    straight = run(tmp_path / "a")
    with pytest.raises(Killed):
        run(tmp_path / "b", kill_at=6)  # checkpoints at steps 3, 4 (epoch end)
    resumed = run(tmp_path / "b")
    assert all(torch.equal(straight[n], resumed[n]) for n in straight)


def test_bad_settings_stop_in_one_line() -> None:
    for kwargs, text in (({"mode": "both"}, "pruner.mode"), ({"gate": "hard"}, "pruner.gate"), ({"tau0": 0}, "tau0")):
        with pytest.raises(UserError, match=text):
            DSP(0.5, **kwargs)
    pruner = DSP(1.0, gate="ste")
    with pytest.raises(UserError, match="fewer heads"):
        pruner.prepare(_ctx(_tiny_bert(), 2))
    toy = ToyModel(torch.ones(2, 3))
    with pytest.raises(UserError, match="no attention layer"):
        DSP(0.5).prepare(PruneContext(toy, {"lin.weight": toy.lin.weight}, iter([]), 2, 1, 0))


# ------------------------------------------------------------------------------------------ cells
@requires_shared_data()
@pytest.mark.parametrize(
    "model, task, mode, achieved",
    [
        ("tiny_bert", "rte", "joint", 2 * 2048 / 17408),
        ("tiny_bert", "rte", "pipelined", 2 * 2048 / 17408),
        ("tiny_clip", "mnist", "joint", 2 * 8192 / 98304),
        ("tiny_clip", "mnist", "pipelined", 2 * 8192 / 98304),
    ],
)
def test_cli_cells(tmp_path, model: str, task: str, mode: str, achieved: float) -> None:
    from seven_bench.conf import compose_config
    from seven_bench.run import run_cell
    from seven_bench.spec import build_spec

    base = [f"model={model}", f"task={task}", "pruner=dsp", f"pruner.mode={mode}", "trainer.max_steps=2"]
    base += ["trainer.batch_size=8", "task.max_train_examples=32", "task.max_eval_examples=16", "progress=false"]
    record = run_cell(build_spec(compose_config([*base, "sparsity=0.5"])), tmp_path, progress=False)
    assert record["status"] == "ok", record["error"]
    assert record["sparsity"]["achieved"] == pytest.approx(achieved) and record["sparsity"]["pruned_but_nonzero"] == 0
    assert record["pruner"]["heads_kept"] == 2 and record["pruner"]["variant"] == mode
    assert record["timing"]["steps"] == (2 if mode == "joint" else 0)  # pipelined: evaluated as searched
    pipelined_steps = record["pruner"].get("dense_finetune", {}).get("steps", 0) + record["pruner"]["search_steps"]
    assert record["timing"]["steps_before_finetune"] == (0 if mode == "joint" else pipelined_steps) >= 0
    assert record["spec"]["trainer"]["recipe"].startswith("dsp" if task == "rte" else "clip")
    if mode == "pipelined":  # a second K reuses the dense fine-tune
        assert record["pruner"]["dense_finetune"]["source"] == "trained"
        again = run_cell(build_spec(compose_config([*base, "pruner.heads_kept=3"])), tmp_path, progress=False)
        assert again["status"] == "ok" and again["pruner"]["dense_finetune"]["source"] == "artifact"
        assert again["pruner"]["heads_kept"] == 3 and math.isclose(again["sparsity"]["achieved"], achieved / 2)
