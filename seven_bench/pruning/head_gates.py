"""Attention heads as units: where each head's weights sit in the prunable set, a per-head gate on a
running model, and the element masks that remove a set of heads exactly.

Where the gate acts. DSP's original (`modeling_gated_bert.py` L341) multiplies each head's attention
probabilities (after their dropout) by its gate g_h. A head's context is c_h = P_h V_h, linear in P_h, so
(g_h P_h) V_h = g_h (P_h V_h): gating the probabilities is the same function as gating the head's context,
and the attention output W_o [c_1; ...; c_H] + b_o with gated contexts is W_o diag(g ⊗ 1_d) c + b_o. We
therefore gate the *columns of the output projection* (W_o's d columns of head h times g_h), through
`torch.nn.utils.parametrize`. Why there and not on the probabilities:

* transformers 5 BERT has no `head_mask` any more, and its SDPA/flash kernels never expose the
  probabilities; scaling W_o leaves the attention kernel untouched, so the gated model runs on SDPA
  (the same kernel as the dense step; no forced eager attention);
* open_clip's `nn.MultiheadAttention` applies `out_proj` functionally inside
  `F.multi_head_attention_forward` (no module call, so no hook on `out_proj` would fire), but it reads
  `out_proj.weight`, which the parametrization supplies: one mechanism for BERT and CLIP;
* it is cheap: one E x E multiply per layer per forward, against B*T*E for gating activations.

The parametrization keeps the very Parameter object (`parametrizations.weight.original`), so the
prunable dict, the optimizer state and in-place masking stay valid; removing it restores the plain
weight. The gate vector is computed once per model forward (a forward pre-hook on the model), so every
layer sees the same Gumbel sample, as in the original.

Removing a head exactly takes its rows of W_q, W_k, W_v AND its columns of W_o: zeroing only the q/k/v
rows is not the same, since softmax rows sum to 1 and the head would still output its value bias b_v
(through W_o). Zeroed W_o columns remove everything the head contributes; the export derives removable
heads from exactly this zero pattern.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.utils.parametrize as parametrize
from torch import nn

from seven_bench.errors import UserError

Masks = dict[str, torch.Tensor]


@dataclass(frozen=True)
class AttentionLayer:
    """One attention layer's heads and where their weights live in the prunable set."""

    name: str  # module path of the attention block
    num_heads: int
    head_dim: int
    row_blocks: tuple[tuple[str, int], ...]  # (prunable name, row offset): head h owns rows offset + [h*d, (h+1)*d)
    out_weight: str  # prunable name of the output projection; head h owns its columns [h*d, (h+1)*d)
    out_module: nn.Module  # the module holding the output projection weight (attribute "weight")
    in_width: int  # columns of each q/k/v row (the hidden size)
    out_height: int  # rows of W_o (the hidden size)

    @property
    def weights_per_head(self) -> int:
        """Weights one head owns: d rows of each q/k/v block and d columns of W_o."""
        return self.head_dim * (len(self.row_blocks) * self.in_width + self.out_height)


def find_attention_layers(model: nn.Module, prunable: dict[str, nn.Parameter]) -> list[AttentionLayer]:
    """Every attention layer whose q/k/v and output weights are all in the prunable set, in model order:
    HF BERT blocks (`*.attention` with `.self.query/key/value` and `.output.dense`) and
    `nn.MultiheadAttention` (open_clip's visual tower: packed `in_proj_weight`, `out_proj`)."""
    layers: list[AttentionLayer] = []
    for name, module in model.named_modules():
        self_attn, output = getattr(module, "self", None), getattr(module, "output", None)
        if self_attn is not None and all(
            hasattr(self_attn, k) for k in ("query", "key", "value", "num_attention_heads")
        ):
            rows = tuple((f"{name}.self.{k}.weight", 0) for k in ("query", "key", "value"))
            out = f"{name}.output.dense.weight"
            heads, dim = int(self_attn.num_attention_heads), int(self_attn.attention_head_size)
            out_module = output.dense
        elif isinstance(module, nn.MultiheadAttention):
            if not module._qkv_same_embed_dim:
                continue
            embed = module.embed_dim
            rows = tuple((f"{name}.in_proj_weight", k * embed) for k in range(3))
            out = f"{name}.out_proj.weight"
            heads, dim = int(module.num_heads), int(module.head_dim)
            out_module = module.out_proj
        else:
            continue
        if not all(n in prunable for n, _ in rows) or out not in prunable:
            continue
        in_width, out_height = int(prunable[rows[0][0]].shape[1]), int(prunable[out].shape[0])
        layers.append(AttentionLayer(name, heads, dim, rows, out, out_module, in_width, out_height))
    if not layers:
        raise UserError(
            "this model has no attention layer whose q/k/v and output weights are prunable: no heads to prune"
        )
    return layers


def head_element_masks(layers: list[AttentionLayer], prunable: dict[str, nn.Parameter], keep: torch.Tensor) -> Masks:
    """Boolean masks over every prunable tensor that remove exactly the heads with keep[i] False (heads
    numbered layer by layer): their q/k/v rows and their W_o columns. Other tensors stay dense."""
    masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in prunable.items()}
    keep = keep.flatten().bool().cpu()
    index = 0
    for layer in layers:
        d = layer.head_dim
        for h in range(layer.num_heads):
            if not bool(keep[index]):
                for name, offset in layer.row_blocks:
                    masks[name][offset + h * d : offset + (h + 1) * d] = False
                masks[layer.out_weight][:, h * d : (h + 1) * d] = False
            index += 1
    return masks


class _GateColumns(nn.Module):
    """Parametrization W -> W * g[cols]: W_o's columns of head h scaled by the layer's current gate g_h."""

    def __init__(self, gates: HeadGates, layer: int, head_dim: int):
        super().__init__()
        self.gates, self.layer, self.head_dim = [gates], layer, head_dim  # list: not a submodule

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        gate = self.gates[0].layer_gate(self.layer)
        if gate is None:
            return weight
        return weight * gate.to(weight.dtype).repeat_interleave(self.head_dim)[None, :]


class HeadGates:
    """Per-head gates on a model: `gate_fn(training)` returns one gate per head (shape [layers, heads]),
    called once per model forward; `gate_fn` returning None leaves the model ungated for that pass."""

    def __init__(self, model: nn.Module, layers: list[AttentionLayer], gate_fn: Callable[[bool], torch.Tensor | None]):
        if len({layer.num_heads for layer in layers}) != 1:
            raise UserError("head gates need the same number of heads in every attention layer")
        self.model, self.layers, self.gate_fn = model, layers, gate_fn
        self.current: torch.Tensor | None = None
        self._hook: Any = None

    def layer_gate(self, layer: int) -> torch.Tensor | None:
        return None if self.current is None else self.current[layer]

    def refresh(self) -> None:
        self.current = self.gate_fn(self.model.training)

    def install(self) -> None:
        for i, layer in enumerate(self.layers):
            parametrize.register_parametrization(layer.out_module, "weight", _GateColumns(self, i, layer.head_dim))
        self._hook = self.model.register_forward_pre_hook(lambda module, args: self.refresh())

    def remove(self) -> None:
        """Back to the plain weights (the same Parameter objects as before `install`)."""
        if self._hook is None:
            return
        self._hook.remove()
        self._hook = None
        for layer in self.layers:
            if parametrize.is_parametrized(layer.out_module, "weight"):
                parametrize.remove_parametrizations(layer.out_module, "weight", leave_parametrized=False)
        self.current = None
