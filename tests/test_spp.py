"""SPP (pruner=spp): the Bregman update and shrinkage by hand, lambda's length rule, entry times and the
step record in the real search loop, the path -> mask cut at an exact parameter count, element masks equal
to the structures' removal, and one search serving every sparsity (in-process and through the CLI)."""

from __future__ import annotations

import copy
import itertools
import json
import math

import pytest
import torch

from seven_bench.artifacts import ArtifactStore
from seven_bench.pruning.base import PruneContext
from seven_bench.pruning.registry import PRUNERS
from seven_bench.pruning.spp import cut_path, cut_per_group, flat, path_order
from seven_bench.pruning.spp_search import (
    SearchSettings,
    SppSearch,
    adam_step_size,
    bregman_step_,
    lambda_for_length,
    shrink,
)
from seven_bench.pruning.structure_gates import StructureGates, bert_layers, entry_costs, masks_for_removed
from tests.conftest import requires_shared_data


def tiny_bert(seed: int = 0, heads: int = 2, hidden: int = 16, inter: int = 12):
    """A 2-layer random BERT with random (non-zero) biases, so a bias-only leak would show in the logits."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=50, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=heads,
        intermediate_size=inter, max_position_embeddings=32, num_labels=2, initializer_range=0.3,
    )  # fmt: skip
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.5)
    prunable = {
        f"{n}.weight": m.weight
        for n, m in model.named_modules()
        if ".encoder.layer." in f".{n}" and isinstance(m, torch.nn.Linear)
    }
    return model, prunable


def batch(seed: int = 1, rows: int = 3, length: int = 7) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(rows, length, dtype=torch.int64)
    mask[0, 5:] = 0  # padding: the additive mask must not disturb the qk removal's constant term
    return {
        "input_ids": torch.randint(0, 50, (rows, length), generator=g),
        "attention_mask": mask,
        "labels": torch.randint(0, 2, (rows,), generator=g),
    }


def test_bregman_update_and_shrinkage_by_hand():
    alpha = torch.tensor([1.0, 0.5, -0.2, 2.0])
    z, gamma = torch.zeros(4), torch.zeros(4)
    eta1 = adam_step_size(0.1, 0.9, 1)
    assert eta1 == pytest.approx(1.0)  # 0.1 / (1 - 0.9)
    bregman_step_(z, gamma, alpha, eta1, kappa=1.0, lam=0.6)
    assert torch.allclose(z, torch.tensor([1.0, 0.5, -0.2, 2.0]))
    assert torch.allclose(gamma, torch.tensor([0.4, 0.0, 0.0, 1.4]))  # only z > lambda enters, shrunk by lambda
    eta2 = adam_step_size(0.1, 0.9, 2)
    assert eta2 == pytest.approx(0.1 / 0.19)
    bregman_step_(z, gamma, alpha, eta2, kappa=1.0, lam=0.6)
    # z += eta2 * (alpha - gamma) = [1 + .6 eta2, .5 + .5 eta2, -.2 - .2 eta2, 2 + .6 eta2]
    expected_z = torch.tensor([1 + 0.6 * eta2, 0.5 + 0.5 * eta2, -0.2 - 0.2 * eta2, 2 + 0.6 * eta2])
    assert torch.allclose(z, expected_z)
    assert torch.allclose(gamma, torch.tensor([0.4 + 0.6 * eta2, 0.5 * eta2 - 0.1, 0.0, 1.4 + 0.6 * eta2]))
    # the original's form ReLU(z * ReLU(1 - lambda/|z|)) is the same map (negative z never enters)
    zs = torch.tensor([-3.0, -0.5, 0.1, 0.6, 0.61, 5.0])
    original = torch.relu(zs * torch.relu(1 - 0.6 / zs.abs()))
    assert torch.allclose(shrink(zs, 0.6), original)
    assert torch.equal(shrink(torch.zeros(2), 0.0), torch.zeros(2))  # no 0/0 at z = 0, lambda = 0


def test_lambda_rule_scales_with_the_search_length():
    # 4 steps, half of them: lambda = lr * (1/0.1 + 1/0.19)
    assert lambda_for_length(4, 1e-3, 0.9, 1.0, 0.5) == pytest.approx(1e-3 * (10 + 1 / 0.19))
    # ten times the search, ten times the steps before a scale at 1 joins: lambda grows by lr per added step
    assert lambda_for_length(400, 1e-3, 0.9, 1.0, 0.5) - lambda_for_length(40, 1e-3, 0.9, 1.0, 0.5) == pytest.approx(
        1e-3 * sum(1 / (1 - 0.9**t) for t in range(21, 201))
    )
    # a scale held at 1 reaches exactly lambda after n steps and joins on the next
    lam = lambda_for_length(12, 1e-3, 0.9, 1.0, 0.25)  # n = 3
    z, gamma, one = torch.zeros(1), torch.zeros(1), torch.ones(1)
    joined = []
    for t in range(1, 7):
        bregman_step_(z, gamma, one, adam_step_size(1e-3, 0.9, t), 1.0, lam)
        joined.append(bool(gamma.item() > 0))
    assert joined == [False, False, False, True, True, True]


def _settings(steps: int, lam: float, interval: int, **kw) -> SearchSettings:
    base = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-4, kappa=1.0, penalty="none", w_sp_attn=4.8e-4, w_sp_mlp=2e-5)
    return SearchSettings(steps=steps, lam=lam, interval=interval, **{**base, **kw})


def test_entry_times_and_step_record_in_the_search_loop():
    """A zero classifier gives alpha a zero gradient, so Adam leaves each scale where it was set: a scale at
    1 joins at the lambda rule's step (0-based 3), one at 0.5 needs twice the z: 0-based step 13 (the sum of
    1/(1 - 0.9^t) first passes 2 * 18.953 at t = 14); one at 0 never joins."""
    model, prunable = tiny_bert()
    with torch.no_grad():
        model.classifier.weight.zero_()
    layers = bert_layers(model, prunable)
    steps, interval = 16, 5
    lam = lambda_for_length(12, 1e-3, 0.9, 1.0, 0.25)  # z of a scale at 1 after 3 steps
    search = SppSearch(model, layers, _settings(steps, lam, interval), num_labels=2)
    with torch.no_grad():
        search.gates.alpha["ffn"][0, 1] = 0.5
        search.gates.alpha["ffn"][0, 2] = 0.0
    b = batch()
    for _ in range(steps):
        search.step(b)
    search.close()
    entry = search.entry_step["ffn"][0]
    assert entry[0].item() == 3 and entry[1].item() == 13 and entry[2].item() == -1
    assert (search.entry_step["qk"] == 3).all() and (search.entry_step["v"] == 3).all()
    # recorded at 0-based steps 0, 5, 10, 15 (every 5th, and the last): in support at 5, 10, 15 / at 15
    assert search.step_record["ffn"][0, 0].item() == 3 and search.step_record["ffn"][0, 1].item() == 1
    assert search.step_record["ffn"][0, 2].item() == 0
    assert all(p.requires_grad for p in model.parameters())  # close() restored the frozen flags
    order = path_order(search.result(), "step_record")
    n_qk_v = 2 * 2 * layers[0].head_dim
    assert order[-1].item() == n_qk_v + 2 and order[-2].item() == n_qk_v + 1  # never joined < joined late


def test_penalty_none_has_no_effect_and_effective_pulls_alpha_to_gamma():
    """Zero task gradient (zero classifier): with penalty=none (the original: its penalty comes after
    backward) alpha stays 1; with penalty=effective the first Adam step sees g = 2 w (alpha - Gamma) = 2 w
    (Gamma = 0), so alpha moves by lr * g / (|g| + eps)."""
    model, prunable = tiny_bert()
    with torch.no_grad():
        model.classifier.weight.zero_()
    layers = bert_layers(model, prunable)
    for penalty in ("none", "effective"):
        search = SppSearch(model, layers, _settings(4, 10.0, 1, penalty=penalty), num_labels=2)
        search.step(batch())
        search.close()
        alpha = {g: search.gates.alpha[g].detach() for g in ("qk", "ffn")}
        if penalty == "none":
            assert all(torch.equal(a, torch.ones_like(a)) for a in alpha.values())
            continue
        for group, w in (("qk", 4.8e-4), ("ffn", 2e-5)):
            g = 2 * w
            assert torch.allclose(alpha[group], torch.full_like(alpha[group], 1 - 1e-3 * g / (g + 1e-4)))


def test_path_order_by_hand():
    like = {"qk": torch.zeros(1, 2), "v": torch.zeros(1, 1), "ffn": torch.zeros(1, 1)}
    path = {
        "steps": 9,
        "step_record": {"qk": torch.tensor([[3.0, 5.0]]), "v": torch.tensor([[5.0]]), "ffn": torch.tensor([[0.0]])},
        "entry_step": {"qk": torch.tensor([[4, 1]]), "v": torch.tensor([[1]]), "ffn": torch.tensor([[-1]])},
        "z": {"qk": torch.tensor([[0.1, 0.2]]), "v": torch.tensor([[0.3]]), "ffn": torch.tensor([[0.0]])},
    }
    assert flat(like).numel() == 4
    # record 5 (entries 1, 2: equal entry step, larger z first), then 3, then the never-entered one
    assert path_order(path, "step_record").tolist() == [2, 1, 0, 3]
    path["step_record"]["qk"] = torch.tensor([[9.0, 5.0]])
    assert path_order(path, "entry_step").tolist() == [2, 1, 0, 3]  # entry step 1, 1, 4, never
    assert path_order(path, "step_record").tolist() == [0, 2, 1, 3]


def test_cut_reaches_an_exact_parameter_count_and_states_the_boundary():
    costs = torch.tensor([10, 10, 4, 4, 4, 3])
    order = torch.tensor([0, 2, 4, 1, 3, 5])  # most important first; removal order 5, 3, 1, 4, 2, 0
    # cumulative removed cost: 0, 3, 7, 17, 21, 25, 35
    removed = cut_path(order, costs, 21)
    assert sorted(torch.nonzero(removed).flatten().tolist()) == [1, 3, 4, 5] and int(costs[removed].sum()) == 21
    assert int(costs[cut_path(order, costs, 35)].sum()) == 35
    assert not cut_path(order, costs, 0).any()
    assert int(costs[cut_path(order, costs, 20)].sum()) == 21  # nearest: |21-20| < |17-20|
    assert int(costs[cut_path(order, costs, 12)].sum()) == 7  # a tie (7 vs 17) keeps more


def test_per_group_cut_is_the_originals_common_fraction():
    like = {"qk": torch.zeros(1, 2), "v": torch.zeros(1, 1), "ffn": torch.zeros(1, 3)}
    costs = torch.tensor([10, 10, 10, 2, 2, 2])  # attention entries 0-2 (30 weights), MLP entries 3-5 (6)
    order = torch.tensor([0, 3, 1, 4, 2, 5])
    # target 18 of 36 = one half of each group: attention 15 (10 or 20: a tie keeps more), MLP 3 (2 or 4)
    removed = cut_per_group(order, costs, 18, like)
    assert torch.nonzero(removed).flatten().tolist() == [2, 5]
    assert torch.nonzero(cut_per_group(order, costs, 36, like)).numel() == 6


def test_bad_values_stop_with_one_line():
    from seven_bench.errors import UserError

    for bad in ({"penalty": "after_backward"}, {"lam": -1.0}, {"interval": 0}, {"entry_fraction": 1.5}):
        with pytest.raises(UserError, match=f"pruner.{next(iter(bad))}"):
            PRUNERS.get("spp").build(bad, 0.5, 0)


def test_costs_and_element_masks_equal_the_structures_removed_by_zero_gates():
    model, prunable = tiny_bert(heads=2, hidden=16, inter=12)
    layers = bert_layers(model, prunable)
    costs = entry_costs(layers, prunable)
    assert costs["qk"][0, 0] == 2 * 2 * 16 and costs["v"][0, 0] == 2 * 2 * 16 and costs["ffn"][0, 0] == 2 * 16
    g = torch.Generator().manual_seed(3)
    removed = {k: torch.rand(c.shape, generator=g) < 0.5 for k, c in costs.items()}
    masks = masks_for_removed(layers, removed, prunable)
    assert sum(int((~m).sum()) for m in masks.values()) == int(flat(costs)[flat(removed)].sum())
    b = {k: v for k, v in batch().items() if k != "labels"}

    masked = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in masked.named_parameters():
            if name in masks:
                p.mul_(masks[name])
    with StructureGates(layers) as gates:
        gates.attach(model)
        with torch.no_grad():
            for k in removed:
                gates.alpha[k].copy_((~removed[k]).float())
            gated = model(**b).logits
    assert torch.allclose(masked(**b).logits, gated, atol=1e-5)
    assert not torch.allclose(model(**b).logits, gated, atol=1e-3)  # the removal does change the model
    assert torch.allclose(model(**b).logits, copy.deepcopy(model)(**b).logits)  # hooks are gone

    rows_only = copy.deepcopy(model)  # FFN rows without the output columns: gelu(bias) leaks through
    ffn_only = {k: torch.zeros_like(v) for k, v in removed.items()}
    ffn_only["ffn"] = removed["ffn"]
    full = masks_for_removed(layers, ffn_only, prunable)
    with torch.no_grad():
        for layer in layers:
            w = dict(rows_only.named_parameters())[layer.weight("inter")]
            w.mul_(full[layer.weight("inter")])
    masked_ffn = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in masked_ffn.named_parameters():
            if name in full:
                p.mul_(full[name])
    assert not torch.allclose(rows_only(**b).logits, masked_ffn(**b).logits, atol=1e-3)


class _NoMoreBatches:
    def __next__(self):
        raise AssertionError("a second search ran")


def test_one_search_serves_every_sparsity(tmp_path):
    model, prunable = tiny_bert()
    store = ArtifactStore(tmp_path)
    cfg = {"search_steps": 4, "interval": 1}
    identity = {"model": "tiny", "task": "toy", "seed": 0}

    def prepare(sparsity, batches):
        pruner = PRUNERS.get("spp").build(cfg, 1.0 - sparsity, 0)
        ctx = PruneContext(model, prunable, batches, 2, 10, 0, artifacts=store, identity=identity)
        ctx.settings, ctx.steps_per_epoch = {"batch_size": 3}, 5
        pruner.prepare(ctx)
        return pruner

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    first = prepare(0.3, itertools.repeat(batch()))
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # the search changes no weight
    second = prepare(0.6, _NoMoreBatches())
    assert first.summary()["search_reused"] is False and second.summary()["search_reused"] is True
    assert first.steps_before_finetune() == second.steps_before_finetune() == 4  # a reused search counts too
    assert len(list((tmp_path / "artifacts").iterdir())) == 1
    total = sum(p.numel() for p in prunable.values())
    for pruner, s in ((first, 0.3), (second, 0.6)):
        facts = pruner.summary()
        pruned = sum(int((~m).sum()) for m in pruner.masks.values())
        assert pruned == facts["removed_weights"]
        assert abs(pruned - round(s * total)) <= 32  # within half of the largest structure (2 * 2 * 16 = 64)
        assert math.isclose(facts["search"]["lam"], lambda_for_length(4, 1e-3, 0.9, 1.0, 0.333))
    kept_first = {n: m for n, m in first.masks.items()}
    assert all((second.masks[n] <= kept_first[n]).all() for n in kept_first)  # a path: nested masks


def test_clip_is_refused_with_one_line():
    from seven_bench.errors import UserError

    with pytest.raises(UserError, match="CLIP's packed nn.MultiheadAttention is not supported"):
        bert_layers(torch.nn.Sequential(torch.nn.MultiheadAttention(8, 2)))


@requires_shared_data()
def test_cli_sweep_over_two_sparsities_searches_once(tmp_path):
    import subprocess
    import sys

    cmd = [
        sys.executable, "-m", "seven_bench.cli", "-m", "model=tiny_bert", "task=rte", "pruner=spp",
        "sparsity=0.3,0.6", "trainer.max_steps=2", "task.max_train_examples=64", "task.max_eval_examples=16",
        "pruner.search_steps=3", f"results_dir={tmp_path}", "progress=false",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "runs").glob("*/record.json"))]
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert sorted(r["pruner"]["search_reused"] for r in records) == [False, True]
    assert len(list((tmp_path / "artifacts").iterdir())) == 1
    for r in records:
        target, achieved = r["sparsity"]["target"], r["sparsity"]["achieved"]
        assert abs(achieved - target) * r["sparsity"]["prunable_weights"] <= 64  # half of a 128-weight structure
        assert r["sparsity"]["pruned_but_nonzero"] == 0
