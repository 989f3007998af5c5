"""Corpus-level evaluation: predictions for a whole split first, then the task's metric once."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from seven_bench.pruning.base import batch_targets, forward_logits


def _stack_spans(parts: list[np.ndarray]) -> np.ndarray:
    """Span logits of batches padded to different lengths, as one (windows, longest, 2) array: the
    positions past a window's batch are -inf, so no decoding ever picks them."""
    longest = max(p.shape[1] for p in parts)
    out = np.full((sum(p.shape[0] for p in parts), longest, parts[0].shape[2]), -np.inf, dtype=np.float32)
    row = 0
    for part in parts:
        out[row : row + part.shape[0], : part.shape[1]] = part
        row += part.shape[0]
    return out


@torch.no_grad()
def predict(
    model: nn.Module, loader: Iterable[dict[str, Any]], device: torch.device, num_labels: int
) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, targets) of a whole split: class ids, regression values, or (extractive QA) the span
    logits themselves, which only the task's metric can decode into answers."""
    was_training = model.training
    model.eval()
    preds, labels = [], []
    spans = False
    for batch in loader:
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        logits = forward_logits(model, batch).float()
        spans = logits.dim() == 3
        if spans:
            preds.append(logits.cpu().numpy())
        else:
            preds.append((logits.squeeze(-1) if num_labels == 1 else logits.argmax(-1)).cpu().numpy())
        labels.append(batch_targets(batch).cpu().numpy())
    model.train(was_training)
    return (_stack_spans(preds) if spans else np.concatenate(preds)), np.concatenate(labels)


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
