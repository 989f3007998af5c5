"""The paired structures of a BERT encoder that structured pruners remove, their scale gates, their parameter
cost, and the element masks that remove them exactly.

SPP (ALGORITHMS.md 4.14 / 7.6) puts one scale on the shared inner dimension of each pair of Linear layers:

- ``qk``: head dimension j of a layer, shared by all its heads: it scales query and key outputs j, j+d, ...
  (one row of W_q and of W_k in every head). Removing it drops q_j k_j from every head's logits.
- ``v``: head dimension j of the value projection, shared by all heads: value rows h*d+j and the matching
  columns of attention.output.dense.
- ``ffn``: hidden neuron i: row i of intermediate.dense and column i of output.dense.

A gate multiplies the Linear's output *including its bias* (the original scales q, k, v and fc1's output),
so a gate at 0 removes the structure. The element masks reproduce that removal exactly on weights alone:

- qk: with the rows zeroed, q_j = b_q,j and k_j = b_k,j for every token, so the logit term b_q,j b_k,j is one
  constant per query row: softmax ignores it.
- v: zeroing only the value rows would leave the constant b_v,j flowing on; zeroing the output columns too
  removes the dimension's whole contribution.
- ffn: zeroing only the row leaves gelu(b_i), a constant that output.dense still adds; the column too is exact.

The gates are forward hooks on the existing modules (no module wrappers), removed when done.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from seven_bench.errors import UserError

GROUPS = ("qk", "v", "ffn")
_LAYER = re.compile(r"^(.*\.)?encoder\.layer\.(\d+)$")


@dataclass(frozen=True)
class LayerStructure:
    """The six Linear modules of one BERT layer (module names) and the shapes that size its structures."""

    index: int
    prefix: str
    heads: int
    head_dim: int
    hidden: int
    intermediate: int

    def module(self, role: str) -> str:
        return (
            self.prefix
            + {
                "query": ".attention.self.query",
                "key": ".attention.self.key",
                "value": ".attention.self.value",
                "attn_out": ".attention.output.dense",
                "inter": ".intermediate.dense",
                "ffn_out": ".output.dense",
            }[role]
        )

    def weight(self, role: str) -> str:
        return self.module(role) + ".weight"

    def size(self, group: str) -> int:
        return self.intermediate if group == "ffn" else self.head_dim


def bert_layers(model: nn.Module, prunable: dict[str, Any] | None = None, pruner: str = "spp") -> list[LayerStructure]:
    """The encoder layers of a BERT-family model, in order. Any other model stops with one line: CLIP's
    visual tower packs q, k and v into nn.MultiheadAttention's in_proj_weight and computes them inside
    F.multi_head_attention_forward, where no hook can scale one head dimension."""
    modules = dict(model.named_modules())
    layers = []
    for name, module in modules.items():
        match = _LAYER.match(name)
        if match is None or not hasattr(module, "attention") or not hasattr(module, "intermediate"):
            continue
        attn = module.attention.self
        layers.append(
            LayerStructure(
                index=int(match.group(2)),
                prefix=name,
                heads=int(attn.num_attention_heads),
                head_dim=int(attn.attention_head_size),
                hidden=int(attn.query.in_features),
                intermediate=int(module.intermediate.dense.out_features),
            )
        )
    if not layers:
        raise UserError(
            f"pruner={pruner} gates BERT encoder layers (query/key/value, intermediate/output) and this model "
            "has none: CLIP's packed nn.MultiheadAttention is not supported; use model=bert, minilm or tiny_bert"
        )
    layers.sort(key=lambda layer: layer.index)
    if len({(layer.heads, layer.head_dim, layer.intermediate) for layer in layers}) != 1:
        raise UserError(f"pruner={pruner} needs equal-sized encoder layers (an already structurally pruned model?)")
    if prunable is not None:
        missing = [
            layer.weight(role)
            for layer in layers
            for role in ("query", "key", "value", "attn_out", "inter", "ffn_out")
            if layer.weight(role) not in prunable
        ]
        if missing:
            raise UserError(f"pruner={pruner} needs every encoder Linear weight prunable; missing {missing[0]}")
    return layers


def entry_costs(layers: list[LayerStructure], prunable: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
    """Prunable weights each structure removes, from the weight shapes: a qk dimension removes one row of
    W_q and one of W_k per head (2 * heads * hidden for BERT), a v dimension one row of W_v and one column of
    attention.output.dense per head, an FFN neuron one row of intermediate.dense and one column of
    output.dense (2 * hidden). Returns group -> [layers, entries] (int64; equal within a layer)."""
    costs = {}
    for group in GROUPS:
        rows = []
        for layer in layers:
            if group == "qk":
                cost = layer.heads * (prunable[layer.weight("query")].shape[1] + prunable[layer.weight("key")].shape[1])
            elif group == "v":
                cost = layer.heads * (
                    prunable[layer.weight("value")].shape[1] + prunable[layer.weight("attn_out")].shape[0]
                )
            else:
                cost = prunable[layer.weight("inter")].shape[1] + prunable[layer.weight("ffn_out")].shape[0]
            rows.append(torch.full((layer.size(group),), cost, dtype=torch.int64))
        costs[group] = torch.stack(rows)
    return costs


def _head_rows(layer: LayerStructure, dims: torch.Tensor) -> torch.Tensor:
    """Output rows h*d + j of a per-head projection, for every head h and every dimension j in dims."""
    heads = torch.arange(layer.heads, device=dims.device).unsqueeze(1) * layer.head_dim
    return (heads + dims.unsqueeze(0)).reshape(-1)


def masks_for_removed(
    layers: list[LayerStructure], removed: dict[str, torch.Tensor], prunable: dict[str, nn.Parameter]
) -> dict[str, torch.Tensor]:
    """Element masks over the whole prunable set (True = kept) that remove the structures flagged in
    `removed` (group -> bool [layers, entries]) exactly as a zero gate does (module docstring); every other
    prunable tensor (the pooler) stays whole."""
    masks = {name: torch.ones_like(p, dtype=torch.bool) for name, p in prunable.items()}
    for i, layer in enumerate(layers):
        qk, v, ffn = (torch.nonzero(removed[group][i]).flatten().cpu() for group in GROUPS)
        for role in ("query", "key"):
            masks[layer.weight(role)][_head_rows(layer, qk)] = False
        masks[layer.weight("value")][_head_rows(layer, v)] = False
        masks[layer.weight("attn_out")][:, _head_rows(layer, v)] = False
        masks[layer.weight("inter")][ffn] = False
        masks[layer.weight("ffn_out")][:, ffn] = False
    return masks


class StructureGates(nn.Module):
    """One scale vector per group and layer (init 1), applied by forward hooks on the owning Linear:
    query and key outputs times alpha_qk (so the logits see alpha_qk^2, as the original), value output times
    alpha_v, intermediate.dense's pre-activation times alpha_ffn. Use as a context manager: the hooks exist
    only inside it."""

    def __init__(self, layers: list[LayerStructure], device: torch.device | str = "cpu"):
        super().__init__()
        self.layers = layers
        self.alpha = nn.ParameterDict(
            {group: nn.Parameter(torch.ones(len(layers), layers[0].size(group), device=device)) for group in GROUPS}
        )
        self._handles: list[Any] = []

    def _hook(self, group: str, i: int, heads: int, size: int) -> Any:
        def hook(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
            scale = self.alpha[group][i, :size]
            return output * scale.repeat(heads).to(output.dtype)

        return hook

    def attach(self, model: nn.Module) -> StructureGates:
        modules = dict(model.named_modules())
        for i, layer in enumerate(self.layers):
            roles = (("query", "qk", layer.heads), ("key", "qk", layer.heads), ("value", "v", layer.heads))
            for role, group, heads in (*roles, ("inter", "ffn", 1)):
                hook = self._hook(group, i, heads, layer.size(group))
                self._handles.append(modules[layer.module(role)].register_forward_hook(hook))
        return self

    def detach_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> StructureGates:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.detach_hooks()
