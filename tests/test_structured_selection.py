"""Structured selection scopes (`pruner.selection=head|neuron|structured`): exact counts on hand cases."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from seven_bench.models.text import text_prunable
from seven_bench.pruning.selection import SELECTIONS
from seven_bench.pruning.structures import Block, Part, find_blocks, structure_summary, structured_topk, unit_scores


def _tiny() -> BertForSequenceClassification:
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=50, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=6, num_labels=2
    )
    return BertForSequenceClassification(cfg).eval()


def test_blocks_of_a_bert():
    model = _tiny()
    blocks = find_blocks(model, text_prunable(model, include_pooler=True))
    assert [(b.kind, b.count) for b in blocks] == [("head", 2), ("neuron", 6), ("head", 2), ("neuron", 6)]
    head = blocks[0]
    assert [p.param.rsplit(".", 2)[-2] for p in head.parts] == ["query", "key", "value", "dense"]
    assert [(p.dim, p.width) for p in head.parts] == [(0, 4), (0, 4), (0, 4), (1, 4)]


def test_unit_scores_hand_case():
    # one 2-head attention of hidden 2 (head size 1): q, k, v rows h, output column h
    scores = {
        "q": torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
        "k": torch.tensor([[0.5, 0.5], [0.0, 1.0]]),
        "v": torch.tensor([[1.0, 0.0], [0.0, 0.0]]),
        "o": torch.tensor([[1.0, 10.0], [2.0, 20.0]]),
    }
    block = Block("head", "a", 2, (Part("q", 0, 0, 1), Part("k", 0, 0, 1), Part("v", 0, 0, 1), Part("o", 1, 0, 1)))
    # head 0: 1+2 + 0.5+0.5 + 1+0 + 1+2 = 8; head 1: 3+4 + 0+1 + 0+0 + 10+20 = 38
    assert unit_scores(block, scores).tolist() == [8.0, 38.0]


def _scores_for(model, low_heads: dict[int, int], low_neurons: dict[int, list[int]]):
    """All scores 1, except the named (layer -> head) and (layer -> neurons) get 0: the lowest ranked."""
    prunable = text_prunable(model, include_pooler=True)
    scores = {n: torch.ones_like(p) for n, p in prunable.items()}
    for layer, head in low_heads.items():
        base = f"bert.encoder.layer.{layer}.attention"
        for p in ("query", "key", "value"):
            scores[f"{base}.self.{p}.weight"][head * 4 : head * 4 + 4] = 0
        scores[f"{base}.output.dense.weight"][:, head * 4 : head * 4 + 4] = 0
    for layer, neurons in low_neurons.items():
        scores[f"bert.encoder.layer.{layer}.intermediate.dense.weight"][neurons] = 0
        scores[f"bert.encoder.layer.{layer}.output.dense.weight"][:, neurons] = 0
    return prunable, scores


def test_head_scope_exact_count():
    # prunable: 2 layers x (4 * 64 attention + 2 * 48 FFN) + pooler 64 = 768; one head owns 4*4*8 = 128 weights
    model = _tiny()
    prunable, scores = _scores_for(model, {1: 0}, {})
    assert sum(p.numel() for p in prunable.values()) == 768
    blocks = find_blocks(model, prunable)
    # sparsity 300/768: target 300 removed -> 2 heads (256 <= 300 < 384); the 0-scored head first, then the
    # first of the tied ones in block order (layer 0 head 0)
    masks = SELECTIONS["head"](scores, 1 - 300 / 768, None, "exact", blocks=blocks)
    removed = sum(int((~m).sum()) for m in masks.values())
    assert removed == 256
    summary = structure_summary(blocks, masks)
    assert summary["heads_removed"] == 2 and summary["heads_removed_per_layer"] == [1, 1]
    q1 = masks["bert.encoder.layer.1.attention.self.query.weight"]
    assert not q1[:4].any() and q1[4:].all()
    assert not masks["bert.encoder.layer.1.attention.output.dense.weight"][:, :4].any()
    assert masks["bert.encoder.layer.0.intermediate.dense.weight"].all()  # FFN untouched by `head`


def test_neuron_scope_exact_count_and_no_resurrection():
    model = _tiny()
    prunable, scores = _scores_for(model, {}, {0: [2, 5], 1: [1]})
    blocks = find_blocks(model, prunable)
    # a neuron owns 8 + 8 = 16 weights; 50 removed at most -> 3 neurons, exactly the 0-scored ones
    masks = structured_topk(scores, 1 - 50 / 768, None, blocks=blocks, kinds=("neuron",))
    assert sum(int((~m).sum()) for m in masks.values()) == 48
    assert structure_summary(blocks, masks)["neurons_removed_per_layer"] == [2, 1]
    inter0 = masks["bert.encoder.layer.0.intermediate.dense.weight"]
    assert (~inter0.all(dim=1)).nonzero().flatten().tolist() == [2, 5]
    # a later step with the removed ones now scoring highest keeps them removed (eligible holds none of them)
    high = {n: s.clone() for n, s in scores.items()}
    high["bert.encoder.layer.0.intermediate.dense.weight"][[2, 5]] = 100.0
    again = structured_topk(high, 1 - 50 / 768, masks, blocks=blocks, kinds=("neuron",))
    assert all(torch.equal(again[n], masks[n]) for n in masks)


def test_structured_ranks_per_weight():
    # heads (128 weights) and neurons (16) compared per weight: the 0-scored head goes before any neuron
    model = _tiny()
    prunable, scores = _scores_for(model, {0: 1}, {1: [0]})
    blocks = find_blocks(model, prunable)
    masks = SELECTIONS["structured"](scores, 1 - 150 / 768, None, "exact", blocks=blocks)
    summary = structure_summary(blocks, masks)
    assert summary["heads_removed"] == 1 and summary["neurons_removed"] == 1  # 128 + 16 = 144 <= 150
    assert sum(int((~m).sum()) for m in masks.values()) == 144


def test_structured_skips_a_head_that_does_not_fit_for_neurons():
    # target 120: the 0-scored head (128) does not fit, so it is skipped; the 0-scored neuron goes first, then
    # the tied rest in block order: layer 0's heads (128, do not fit), then layer 0's neurons until 8 < 16 remain
    model = _tiny()
    prunable, scores = _scores_for(model, {0: 1}, {1: [0]})
    blocks = find_blocks(model, prunable)
    masks = SELECTIONS["structured"](scores, 1 - 120 / 768, None, "exact", blocks=blocks)
    summary = structure_summary(blocks, masks)
    assert summary["heads_removed"] == 0 and summary["neurons_removed_per_layer"] == [6, 1]
    assert sum(int((~m).sum()) for m in masks.values()) == 112
    assert not masks["bert.encoder.layer.1.intermediate.dense.weight"][0].any()


@pytest.mark.parametrize("name", ["magnitude", "snip", "seven_pre"])
def test_pre_pruners_accept_structured_scopes(name):
    from seven_bench.pruning.registry import PRUNERS

    cfg = {"selection": "head", "count_rule": "original", "num_batches": 1, "grad_mode": "train"}
    if name == "seven_pre":
        cfg.update(
            alpha1=0.8,
            alpha2=0.9,
            eps=1e-9,
            first_moment="abs",
            correction="full",
            schedule="exponential",
            resurrection=False,
        )
    pruner = PRUNERS.get(name).build(cfg, 0.8, 0)
    assert pruner.selection == "head"
