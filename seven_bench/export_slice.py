"""Slice a (masked) BERT classifier into a smaller one that computes the same function.

What can go is read from the weights alone (a pruned weight is an exact zero, whatever the method), and
only what is exactly redundant is removed; everything else is kept as it is:

* **value channel c** (head h, dim j) goes when its value row or its attention.output.dense column is zero.
  With the row zero the channel outputs its bias b_v[c] at every position, and attention (weights summing to
  1) passes that constant through, so its contribution W_o[:, c] b_v[c] is folded into output.dense's bias;
  with the column zero that product is 0.
* **head h** goes when all its value channels go (it then adds only constants, folded as above).
* **query-key dim j** of the kept heads goes when its key row is zero in every kept head (the score term
  q_j b_k[j] is the same for every key, and softmax ignores a per-query constant), or its query row and
  query bias are zero. A layer keeps one width per head, so a dim goes only when every kept head can lose it;
  likewise a value dim.
* **FFN neuron i** goes when its intermediate row or its output.dense column is zero; act(b_i) W_out[:, i]
  is folded into output.dense's bias (0 when the column is zero).

So a removed head (q/k/v rows + output columns zeroed), a removed v dim, a removed q-k dim and a removed
neuron, the zero patterns DSP and SPP write, all come out as smaller Linears. Zeros that fit no structure
stay in the sliced weights (the compressed storage, export_compress.py, handles them).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from transformers.activations import ACT2FN

from seven_bench.export_model import PrunedBertConfig, PrunedBertForSequenceClassification


def _zero_rows(weight: torch.Tensor) -> torch.Tensor:
    return ~weight.ne(0).any(dim=1)  # weight: [rows, cols]


def _head_sizes(attention: nn.Module) -> tuple[int, int, int]:
    """(heads, qk width, v width) of a stock or pruned BERT self-attention."""
    qk = int(getattr(attention, "qk_head_size", attention.attention_head_size))
    v = int(getattr(attention, "v_head_size", attention.attention_head_size))
    heads = int(getattr(attention, "num_attention_heads", 0)) if v == 0 else attention.value.out_features // v
    return heads, qk, v


def _pick(linear: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> nn.Linear:
    """A new Linear holding the chosen output rows / input columns of `linear` (indices, sorted)."""
    weight, bias = linear.weight.detach(), linear.bias.detach()
    if rows is not None:
        weight, bias = weight[rows], bias[rows]
    if cols is not None:
        weight = weight[:, cols]
    out = nn.Linear(weight.shape[1], weight.shape[0], device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        out.weight.copy_(weight)
        out.bias.copy_(bias)
    return out


@torch.no_grad()
def _slice_attention(layer: nn.Module) -> dict[str, Any]:
    attention, out = layer.attention.self, layer.attention.output.dense
    heads, dqk, dv = _head_sizes(attention)
    wq, wk, wv = attention.query.weight, attention.key.weight, attention.value.weight
    v_gone = (_zero_rows(wv) | _zero_rows(out.weight.t())).view(heads, dv)
    kept_heads = (~v_gone.all(dim=1)).nonzero().flatten()
    v_keep = (~v_gone[kept_heads].all(dim=0)).nonzero().flatten()
    qk_gone = (_zero_rows(wk) | (_zero_rows(wq) & attention.query.bias.eq(0))).view(heads, dqk)
    qk_keep = (~qk_gone[kept_heads].all(dim=0)).nonzero().flatten()
    if kept_heads.numel() == 0:
        v_keep = qk_keep = kept_heads
    v_channels = (kept_heads[:, None] * dv + v_keep[None, :]).flatten()
    qk_channels = (kept_heads[:, None] * dqk + qk_keep[None, :]).flatten()
    dropped = torch.ones(heads * dv, dtype=torch.bool, device=wv.device)
    dropped[v_channels] = False
    bias = out.bias + out.weight[:, dropped] @ attention.value.bias[dropped]  # constants the dropped channels add
    sizes = {"heads": int(kept_heads.numel()), "qk_dim": int(qk_keep.numel()), "v_dim": int(v_keep.numel())}
    new = {
        "query": _pick(attention.query, rows=qk_channels),
        "key": _pick(attention.key, rows=qk_channels),
        "value": _pick(attention.value, rows=v_channels),
        "out": _pick(out, cols=v_channels),
    }
    new["out"].bias.copy_(bias)
    return {"sizes": sizes, "kept_heads": kept_heads.tolist(), "modules": new}


@torch.no_grad()
def _slice_ffn(layer: nn.Module, activation: nn.Module) -> tuple[int, nn.Linear, nn.Linear]:
    inner, outer = layer.intermediate.dense, layer.output.dense
    gone = _zero_rows(inner.weight) | _zero_rows(outer.weight.t())
    keep = (~gone).nonzero().flatten()
    folded = outer.bias + outer.weight[:, gone] @ activation(inner.bias[gone])
    new_outer = _pick(outer, cols=keep)
    new_outer.bias.copy_(folded)
    return int(keep.numel()), _pick(inner, rows=keep), new_outer


@torch.no_grad()
def slice_bert(model: nn.Module) -> tuple[PrunedBertForSequenceClassification, dict[str, Any]]:
    """The smallest PrunedBert computing what `model` (a stock or pruned BertForSequenceClassification, in
    eval mode) computes, and a plan: per-layer sizes and the original indices of the kept heads."""
    base = {k: v for k, v in model.config.to_dict().items() if k not in ("layer_sizes", "model_type")}
    activation = ACT2FN[model.config.hidden_act]
    sizes, kept_heads, parts = [], [], []
    for layer in model.bert.encoder.layer:
        attention = _slice_attention(layer)
        neurons, inner, outer = _slice_ffn(layer, activation)
        sizes.append({**attention["sizes"], "intermediate_size": neurons})
        kept_heads.append(attention["kept_heads"])
        parts.append((attention["modules"], inner, outer))
    config = PrunedBertConfig(layer_sizes=sizes, **base)
    config.architectures = ["PrunedBertForSequenceClassification"]
    config._attn_implementation = model.config._attn_implementation
    pruned = PrunedBertForSequenceClassification(config)
    state = {k: v for k, v in model.state_dict().items() if ".encoder.layer." not in k}
    pruned.load_state_dict(state, strict=False)
    for layer, (attention, inner, outer) in zip(pruned.bert.encoder.layer, parts):
        for name in ("query", "key", "value"):
            setattr(layer.attention.self, name, attention[name])
        layer.attention.output.dense = attention["out"]
        layer.intermediate.dense, layer.output.dense = inner, outer
    old_layers = model.bert.encoder.layer
    for new_layer, old_layer in zip(pruned.bert.encoder.layer, old_layers):
        new_layer.attention.output.LayerNorm.load_state_dict(old_layer.attention.output.LayerNorm.state_dict())
        new_layer.output.LayerNorm.load_state_dict(old_layer.output.LayerNorm.state_dict())
    pruned.to(next(model.parameters()).device).eval()
    return pruned, {"layer_sizes": sizes, "kept_heads": kept_heads}


def dense_config(model: nn.Module) -> dict[str, Any]:
    """The unpruned architecture of a (possibly already sliced) model, for the dense reference."""
    cfg = copy.deepcopy(model.config.to_dict())
    cfg.pop("layer_sizes", None)
    cfg.pop("auto_map", None)
    cfg["model_type"] = "bert"
    cfg["architectures"] = ["BertForSequenceClassification"]
    return cfg
