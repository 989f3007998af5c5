"""Inference latency and throughput of an exported model beside its dense original.

The machine may be shared (other jobs on the same cores), so the models are timed interleaved (dense,
exported, dense, exported, ...) after a warm-up each, and the median of the repeats is reported: a burst of
load then slows both alike instead of one. The ideal ratio is the encoder's multiply-accumulates (Linear
layers + attention products) of the exported model over the dense one's, at the same batch and length.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from torch import nn


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def text_inputs(model: nn.Module, batch: int, length: int, device: torch.device, seed: int = 0) -> dict[str, Any]:
    """Random token ids (ids >= 1000: no special tokens) with a full attention mask."""
    generator = torch.Generator().manual_seed(seed)
    vocab = int(model.config.vocab_size)
    ids = torch.randint(min(1000, vocab - 1), vocab, (batch, length), generator=generator)
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device)}


@torch.inference_mode()
def time_models(
    models: dict[str, nn.Module], inputs: dict[str, Any], repeats: int = 5, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds per forward of each model, `repeats` rounds, the models interleaved within a round."""
    device = next(iter(inputs.values())).device
    for model in models.values():
        model.eval()
        for _ in range(warmup):
            model(**inputs)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            _sync(device)
            start = time.perf_counter()
            model(**inputs)
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def encoder_macs(model: nn.Module, length: int) -> int:
    """Multiply-accumulates of one sequence through the encoder: every Linear in an encoder layer (length
    rows each) plus the two attention products (heads x length^2 x qk / v width)."""
    total = 0
    for layer in model.bert.encoder.layer:
        for module in layer.modules():
            if isinstance(module, nn.Linear):
                total += length * module.in_features * module.out_features
        attention = layer.attention.self
        total += length * length * (attention.query.out_features + attention.value.out_features)
    return total


def compare_latency(
    dense: nn.Module, exported: nn.Module, batch: int, length: int, repeats: int, device: torch.device
) -> dict[str, Any]:
    """Median latency and throughput of both models, their ratio and the ideal (MAC) ratio."""
    inputs = text_inputs(dense, batch, length, device)
    times = time_models({"dense": dense, "exported": exported}, inputs, repeats)
    dense_s, exported_s = statistics.median(times["dense"]), statistics.median(times["exported"])
    ideal = encoder_macs(exported, length) / encoder_macs(dense, length)
    return {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "batch_size": batch,
        "seq_len": length,
        "repeats": repeats,
        "dense_seconds": dense_s,
        "exported_seconds": exported_s,
        "dense_examples_per_second": batch / dense_s,
        "exported_examples_per_second": batch / exported_s,
        "latency_ratio": exported_s / dense_s,
        "speedup": dense_s / exported_s,
        "ideal_ratio": ideal,
        "ratio_vs_ideal": (exported_s / dense_s) / ideal,
        "dense_runs": times["dense"],
        "exported_runs": times["exported"],
    }
