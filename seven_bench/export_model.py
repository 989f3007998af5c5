"""BERT for sequence classification with per-layer sizes: what a structurally pruned BERT exports to.

Transformers 5 dropped `prune_heads` and the `pruned_heads` config entry, and its BertSelfAttention ties
query, key and value to one head size (hidden / heads). A pruned layer needs four sizes of its own, so the
config carries ``layer_sizes``, one entry per layer: ``heads`` kept, ``qk_dim`` (query-key width per head,
SPP's q-k dims), ``v_dim`` (value width per head, SPP's v dims) and ``intermediate_size`` (FFN neurons kept).
The attention keeps the original scaling 1/sqrt(hidden / num_attention_heads), which is what the masked
model computes.

This file is self-contained (torch + transformers only): the exporter copies it into every export folder as
``modeling_pruned_bert.py`` and names it in config.json's ``auto_map``, so the folder loads anywhere with
``AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)``; inside seven-bench,
``seven_bench.export`` registers the classes, so no remote code is needed there.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.bert.modeling_bert import eager_attention_forward


class PrunedBertConfig(BertConfig):
    model_type = "pruned_bert"

    def __init__(self, layer_sizes: list[dict[str, int]] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        head = self.hidden_size // self.num_attention_heads
        full = {"heads": self.num_attention_heads, "qk_dim": head, "v_dim": head}
        self.layer_sizes = layer_sizes or [
            {**full, "intermediate_size": self.intermediate_size} for _ in range(self.num_hidden_layers)
        ]


class PrunedBertSelfAttention(nn.Module):
    """Self-attention with `heads` heads of query-key width `qk_dim` and value width `v_dim`."""

    def __init__(self, config: PrunedBertConfig, sizes: dict[str, int], layer_idx: int | None = None):
        super().__init__()
        self.config = config
        self.num_attention_heads = int(sizes["heads"])
        self.qk_head_size = int(sizes["qk_dim"])
        self.v_head_size = int(sizes["v_dim"])
        self.attention_head_size = self.v_head_size
        self.scaling = (config.hidden_size // config.num_attention_heads) ** -0.5  # the unpruned model's
        heads, hidden = self.num_attention_heads, config.hidden_size
        self.query = nn.Linear(hidden, heads * self.qk_head_size)
        self.key = nn.Linear(hidden, heads * self.qk_head_size)
        self.value = nn.Linear(hidden, heads * self.v_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.is_decoder = False
        self.is_causal = False
        self.layer_idx = layer_idx

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        kwargs.pop("encoder_hidden_states", None)
        kwargs.pop("cache", None)
        kwargs.pop("past_key_values", None)
        batch, length = hidden_states.shape[:-1]
        heads = self.num_attention_heads
        if heads == 0:  # every head removed: the attention adds only output.dense's bias
            return hidden_states.new_zeros(batch, length, 0), None
        value = self.value(hidden_states).view(batch, length, heads, self.v_head_size).transpose(1, 2)
        if self.qk_head_size:
            query = self.query(hidden_states).view(batch, length, heads, self.qk_head_size).transpose(1, 2)
            key = self.key(hidden_states).view(batch, length, heads, self.qk_head_size).transpose(1, 2)
        else:  # no query-key width left: every score is 0, attention is uniform over the unmasked keys
            query = hidden_states.new_zeros(batch, heads, length, 1)
            key = hidden_states.new_zeros(batch, heads, length, 1)
        width = max(query.shape[-1], self.v_head_size)
        if query.shape[-1] != self.v_head_size:  # zero-padding keeps scores and outputs exact and lets torch's
            # fused attention run: with unequal q-k / v widths it falls back to a 3-4x slower kernel on CPU
            query = nn.functional.pad(query, (0, width - query.shape[-1]))
            key = nn.functional.pad(key, (0, width - key.shape[-1]))
            value = nn.functional.pad(value, (0, width - self.v_head_size))
        attend = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        out, weights = attend(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=0.0 if not self.training else self.dropout.p,
            scaling=self.scaling,
            **kwargs,
        )
        return out[..., : self.v_head_size].reshape(batch, length, -1).contiguous(), weights


def resize_layers_(model: BertForSequenceClassification, config: PrunedBertConfig) -> None:
    """Swap every layer's attention and FFN Linears for ones of the sizes in `config.layer_sizes`."""
    hidden = config.hidden_size
    warnings.filterwarnings("ignore", message="Initializing zero-element tensors is a no-op")  # a removed layer
    for index, (layer, sizes) in enumerate(zip(model.bert.encoder.layer, config.layer_sizes)):
        attention = PrunedBertSelfAttention(config, sizes, layer_idx=index)
        layer.attention.self = attention
        layer.attention.output.dense = nn.Linear(attention.num_attention_heads * attention.v_head_size, hidden)
        layer.intermediate.dense = nn.Linear(hidden, int(sizes["intermediate_size"]))
        layer.output.dense = nn.Linear(int(sizes["intermediate_size"]), hidden)


class PrunedBertForSequenceClassification(BertForSequenceClassification):
    config_class = PrunedBertConfig

    def __init__(self, config: PrunedBertConfig):
        super().__init__(config)
        resize_layers_(self, config)
        self.post_init()
