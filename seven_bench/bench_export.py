"""`make bench`: is a structurally pruned export really faster? MiniLM with half its heads and half its FFN
neurons removed (per layer, the lower-magnitude half: summed |W| per head / neuron), exported, and timed
against the dense model at batch 32, 128 tokens, interleaved, median of the repeats. Target: the latency
ratio within 10% of the ideal (multiply-accumulate) ratio."""

from __future__ import annotations

import tempfile
from typing import Any

import torch

from seven_bench.export import export_model
from seven_bench.pruning.structures import find_blocks, remove_units_, unit_scores


def half_structures_(model: torch.nn.Module, prunable: dict[str, torch.nn.Parameter]) -> dict[str, int]:
    """Zero the lower-|W| half of every layer's heads and FFN neurons in place (the DSP / SPP zero pattern)."""
    masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in prunable.items()}
    scores = {n: p.detach().abs() for n, p in prunable.items()}
    removed = {"head": 0, "neuron": 0}
    for block in find_blocks(model, prunable):
        order = torch.sort(unit_scores(block, scores), stable=True).indices
        gone = torch.zeros(block.count, dtype=torch.bool)
        gone[order[: block.count // 2]] = True
        remove_units_(masks, block, gone)
        removed[block.kind] += int(gone.sum())
    with torch.no_grad():
        for name, param in prunable.items():
            param.mul_(masks[name])
    return removed


def bench_export(repeats: int, batch_size: int = 32, seq_len: int = 128) -> dict[str, Any]:
    from transformers import AutoModelForSequenceClassification

    from seven_bench.models.text import MINILM_HUB_ID, minilm_package_dir, text_prunable

    source = str(minilm_package_dir() or MINILM_HUB_ID)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=2).eval()
    removed = half_structures_(model, text_prunable(model, include_pooler=True))
    with tempfile.TemporaryDirectory() as folder:
        summary = export_model(
            model,
            f"{folder}/minilm_half",
            latency={"batch_size": batch_size, "seq_len": seq_len, "repeats": max(repeats, 5)},
        )
    lat = summary["latency"]
    return {
        "name": "MiniLM, half heads + half neurons",
        "heads_removed": removed["head"],
        "neurons_removed": removed["neuron"],
        "params_dense": summary["params"]["dense"],
        "params_exported": summary["params"]["exported"],
        "file_mib_dense": summary["dense_file_bytes"] / 2**20,
        "file_mib_exported": summary["exported_file_bytes"] / 2**20,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "threads": lat["threads"],
        "dense_s": lat["dense_seconds"],
        "exported_s": lat["exported_seconds"],
        "latency_ratio": lat["latency_ratio"],
        "ideal_ratio": lat["ideal_ratio"],
        "ratio_vs_ideal": lat["ratio_vs_ideal"],
        "within_10pct": abs(lat["ratio_vs_ideal"] - 1.0) <= 0.10,
        "dense_runs": lat["dense_runs"],
        "exported_runs": lat["exported_runs"],
    }
