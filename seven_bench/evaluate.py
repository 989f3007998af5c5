"""Corpus-level evaluation: predictions for a whole split first, then the task's metric once."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from seven_bench.pruning.base import forward_logits


@torch.no_grad()
def predict(
    model: nn.Module, loader: Iterable[dict[str, Any]], device: torch.device, num_labels: int
) -> tuple[np.ndarray, np.ndarray]:
    was_training = model.training
    model.eval()
    preds, labels = [], []
    for batch in loader:
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        logits = forward_logits(model, batch).float()
        preds.append((logits.squeeze(-1) if num_labels == 1 else logits.argmax(-1)).cpu().numpy())
        labels.append(batch["labels"].cpu().numpy())
    model.train(was_training)
    return np.concatenate(preds), np.concatenate(labels)


def evaluate(
    model: nn.Module,
    loaders: dict[str, Iterable[dict[str, Any]]],
    metric: Callable[[np.ndarray, np.ndarray], dict[str, float]],
    device: torch.device,
    num_labels: int,
) -> dict[str, dict[str, float]]:
    """{split: {metric: value}} for every evaluation split (MNLI: matched and mismatched)."""
    out = {}
    for split, loader in loaders.items():
        preds, labels = predict(model, loader, device, num_labels)
        out[split] = {k: float(v) for k, v in metric(preds, labels).items()}
    return out
