"""Structures of a transformer that can be removed whole: attention heads and FFN neurons.

A **block** is one layer's set of units of one kind (the heads of one attention, the neurons of one FFN).
Each unit owns, in every tensor of the block, a contiguous run of `width` rows (dim 0) or columns (dim 1):

* a head h of a BERT attention: rows [h d, (h+1) d) of query, key and value, and the same columns of
  attention.output.dense (d = head size); of a CLIP/open_clip `nn.MultiheadAttention`: the same rows in
  each third of the packed `in_proj_weight`, and columns of `out_proj.weight`;
* an FFN neuron i: row i of intermediate.dense (CLIP: mlp.c_fc) and column i of output.dense (mlp.c_proj).

Zeroing all of a unit's entries is exactly the zero pattern the structured pruners (DSP, SPP) write, and the
one the exporter (seven_bench/export.py) slices out. Scores and masks are computed a whole block at a time
(reshapes, no per-unit Python loops), so BERT-base's 36,864 neurons cost a few tensor ops per layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

KINDS = ("head", "neuron")


@dataclass(frozen=True)
class Part:
    """Unit u of a block owns indices [start + u*width, start + (u+1)*width) along `dim` of `param`."""

    param: str
    dim: int
    start: int
    width: int


@dataclass(frozen=True)
class Block:
    kind: str  # "head" | "neuron"
    name: str  # e.g. "bert.encoder.layer.3.attention"
    count: int
    parts: tuple[Part, ...]


def _bert_blocks(model: nn.Module) -> list[Block]:
    blocks: list[Block] = []
    for name, module in model.named_modules():
        if name.endswith("attention.self") and hasattr(module, "attention_head_size"):
            base = name[: -len(".self")]
            d = int(module.attention_head_size)
            heads = module.query.weight.shape[0] // d
            parts = tuple(Part(f"{name}.{p}.weight", 0, 0, d) for p in ("query", "key", "value"))
            blocks.append(Block("head", base, heads, (*parts, Part(f"{base}.output.dense.weight", 1, 0, d))))
        elif name.endswith(".intermediate.dense") and isinstance(module, nn.Linear):
            base = name[: -len(".intermediate.dense")]
            parts = (Part(f"{name}.weight", 0, 0, 1), Part(f"{base}.output.dense.weight", 1, 0, 1))
            blocks.append(Block("neuron", f"{base}.ffn", module.out_features, parts))
    return blocks


def _clip_blocks(model: nn.Module) -> list[Block]:
    blocks: list[Block] = []
    for name, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention):
            width, heads = module.embed_dim, module.num_heads
            d = width // heads
            packed = tuple(Part(f"{name}.in_proj_weight", 0, i * width, d) for i in range(3))
            blocks.append(Block("head", name, heads, (*packed, Part(f"{name}.out_proj.weight", 1, 0, d))))
        elif re.search(r"\.mlp$", name) and hasattr(module, "c_fc"):
            parts = (Part(f"{name}.c_fc.weight", 0, 0, 1), Part(f"{name}.c_proj.weight", 1, 0, 1))
            blocks.append(Block("neuron", name, module.c_fc.out_features, parts))
    return blocks


def find_blocks(model: nn.Module, prunable: dict[str, torch.Tensor] | None = None) -> list[Block]:
    """Every head and FFN block of a BERT-family or open_clip model, in module order. With `prunable`, parts
    outside the prunable set are left out (they are not the pruner's to zero) and blocks with none dropped."""
    blocks = _bert_blocks(model) or _clip_blocks(model)
    if prunable is None:
        return blocks
    kept = []
    for block in blocks:
        parts = tuple(p for p in block.parts if p.param in prunable)
        if parts:
            kept.append(Block(block.kind, block.name, block.count, parts))
    return kept


def _slab(tensor: torch.Tensor, block: Block, part: Part) -> torch.Tensor:
    """The part's entries as [count, width, other] (a view when the tensor is contiguous)."""
    slab = tensor.narrow(part.dim, part.start, block.count * part.width)
    if part.dim == 0:
        return slab.reshape(block.count, part.width, -1)
    return slab.reshape(slab.shape[0], block.count, part.width).permute(1, 2, 0)


def unit_costs(block: Block, shapes: dict[str, torch.Size]) -> int:
    """Weights one unit of the block owns (the same for every unit of a block)."""
    return sum(part.width * (shapes[part.param].numel() // shapes[part.param][part.dim]) for part in block.parts)


def unit_scores(block: Block, scores: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each unit's summed score over all its rows and columns, float64, shape [count]."""
    total = torch.zeros(block.count, dtype=torch.float64, device=next(iter(scores.values())).device)
    for part in block.parts:
        total += _slab(scores[part.param].detach().double(), block, part).sum(dim=(1, 2))
    return total


def unit_alive(block: Block, masks: dict[str, torch.Tensor]) -> torch.Tensor:
    """A unit is alive while any of its entries is still kept (bool, shape [count])."""
    alive = torch.zeros(block.count, dtype=torch.bool, device=next(iter(masks.values())).device)
    for part in block.parts:
        alive |= _slab(masks[part.param], block, part).reshape(block.count, -1).any(dim=1)
    return alive


def remove_units_(masks: dict[str, torch.Tensor], block: Block, removed: torch.Tensor) -> None:
    """Zero every entry of the removed units (bool [count]) in the masks, in place."""
    for part in block.parts:
        mask = masks[part.param]
        slab = mask.narrow(part.dim, part.start, block.count * part.width)
        keep = (~removed).to(mask.device).repeat_interleave(part.width)
        if part.dim == 0:
            slab.bitwise_and_(keep.view(-1, *([1] * (mask.dim() - 1))))
        else:
            slab.bitwise_and_(keep.view(1, -1))


def _units(
    blocks: list[Block],
    kinds: tuple[str, ...],
    scores: dict[str, torch.Tensor],
    eligible: dict[str, torch.Tensor] | None,
) -> tuple[list[Block], torch.Tensor, torch.Tensor, torch.Tensor]:
    """The chosen blocks and, over all their units in block order: score per weight, cost, alive."""
    shapes = {name: s.shape for name, s in scores.items()}
    chosen = [b for b in blocks if b.kind in kinds]
    values, costs, alive = [], [], []
    for block in chosen:
        cost = unit_costs(block, shapes)
        values.append(unit_scores(block, scores) / cost)
        costs.append(torch.full((block.count,), cost, dtype=torch.int64))
        alive.append(
            unit_alive(block, eligible).cpu() if eligible is not None else torch.ones(block.count, dtype=torch.bool)
        )
    if not chosen:
        empty = torch.zeros(0)
        return chosen, empty.double(), empty.long(), empty.bool()
    return chosen, torch.cat([v.cpu() for v in values]), torch.cat(costs), torch.cat(alive)


def _fill(costs: list[int], budget: int) -> torch.Tensor:
    """Walk the ranking lowest first and remove every unit that still fits the budget: the ranking's prefix
    when all units cost the same; with heads and neurons mixed, a head that no longer fits is skipped and
    cheaper neurons further up fill the rest, so the target is missed by less than one neuron."""
    chosen = torch.zeros(len(costs), dtype=torch.bool)
    cheapest = min(costs, default=0)
    for index, cost in enumerate(costs):
        if budget < cheapest:
            break
        if cost <= budget:
            chosen[index] = True
            budget -= cost
    return chosen


def removable_fraction(blocks: list[Block], kinds: tuple[str, ...], shapes: dict[str, torch.Size]) -> float:
    """The largest fraction of the prunable weights the chosen structures can remove (all of them removed)."""
    total = sum(s.numel() for s in shapes.values())
    return sum(unit_costs(b, shapes) * b.count for b in blocks if b.kind in kinds) / max(total, 1)


def structured_topk(
    scores: dict[str, torch.Tensor],
    density: float,
    eligible: dict[str, torch.Tensor] | None = None,
    count_rule: str = "exact",
    *,
    blocks: list[Block],
    kinds: tuple[str, ...] = KINDS,
) -> dict[str, torch.Tensor]:
    """Remove whole heads and/or neurons by one global ranking until the removed weights reach the target.

    A unit is ranked by its summed score per weight it owns (the plain sum within one kind, whose units all
    cost the same; per weight makes a head and a neuron comparable under `structured`). Units are removed
    lowest first while they fit in round((1 - density) n) removed weights of all n prunable weights (one that
    does not fit is skipped for cheaper ones further up: `_fill`), so the achieved sparsity is the target
    rounded down to whole units (`count_rule` does not apply). Units already
    removed (no resurrection: `eligible` holds none of their entries) stay removed. Weights outside the chosen
    structures (the pooler; the FFN under `head`) are kept.

    Example: two heads of 4 weights each with summed scores 1.0 and 3.0 at keep ratio 0.5 of 8 weights:
    the first head is removed (4 <= 4), the second kept.
    """
    total = sum(s.numel() for s in scores.values())
    target = total - int(round(density * total))
    chosen, values, costs, alive = _units(blocks, kinds, scores, eligible)
    living = alive.nonzero().flatten()
    order = living[torch.sort(values[living], stable=True).indices]
    removed = ~alive
    removed[order] = _fill(costs[order].tolist(), target - int(costs[~alive].sum()))
    removed |= ~alive
    masks = {name: torch.ones_like(s, dtype=torch.bool) for name, s in scores.items()}
    offset = 0
    for block in chosen:
        remove_units_(masks, block, removed[offset : offset + block.count])
        offset += block.count
    return masks


def structure_summary(blocks: list[Block], masks: dict[str, torch.Tensor]) -> dict[str, object]:
    """Removed heads / neurons (all entries zero) per kind, for the record: counts, fraction, per block."""
    out: dict[str, object] = {}
    for kind in KINDS:
        chosen = [b for b in blocks if b.kind == kind]
        if not chosen:
            continue
        removed = [int((~unit_alive(b, masks)).sum()) for b in chosen]
        total = sum(b.count for b in chosen)
        out[f"{kind}s_removed"] = sum(removed)
        out[f"{kind}s_total"] = total
        out[f"{kind}_sparsity"] = sum(removed) / total
        out[f"{kind}s_removed_per_layer"] = removed
    return out
