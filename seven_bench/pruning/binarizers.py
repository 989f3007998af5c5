"""The mask machinery of movement pruning (ALGORITHMS.md section 4.6), as the authors' code runs it
(`emmental/modules/binarizer.py`, `masked_nn.py`): the TopK and threshold masks, the global TopK
threshold, their straight-through autograd Functions, and the parametrization W -> W * M(S)."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from seven_bench.pruning.selection import select_flat


class MaskOwner(Protocol):
    """What MaskedWeight needs from its owning pruner (movement's learned-score pruners)."""

    def forward_mask(self, name: str, training: bool) -> torch.Tensor: ...


MIN_KEEP_FRACTION = 0.005  # ThresholdBinarizer keeps at least int(0.005 * n) + 1 entries per tensor


def topk_mask(scores: torch.Tensor, density: float, count_rule: str = "floor") -> torch.Tensor:
    """TopKBinarizer: the int(r * n) largest scores of one tensor (bool; ties broken by position)."""
    return select_flat(scores.detach().reshape(-1).float(), density, count_rule).view(scores.shape)


def threshold_mask(scores: torch.Tensor, threshold: float, sigmoid: bool) -> torch.Tensor:
    """ThresholdBinarizer: S > tau (or sigmoid(S) > tau); if fewer than int(0.005 n) + 1 survive, keep the
    entries above the (n - nb_min)-th smallest score instead (bool)."""
    s = scores.detach()
    n = s.numel()
    nb_min = int(MIN_KEEP_FRACTION * n) + 1
    mask = (torch.sigmoid(s) > threshold) if sigmoid else (s > threshold)
    if int(mask.sum()) < nb_min:
        k_threshold = s.reshape(-1).kthvalue(max(n - nb_min, 1)).values
        mask = s > k_threshold
    return mask


def global_score_threshold(scores: list[torch.Tensor], density: float) -> float:
    """The original's global TopK value: kthvalue(max(n - (int(n r) + 1), 1)) of all scores."""
    concat = torch.cat([s.detach().reshape(-1).float() for s in scores])
    n = concat.numel()
    kth = max(n - (int(n * density) + 1), 1)
    return float(concat.kthvalue(kth).values.item())


class TopKBinarizer(torch.autograd.Function):
    """M = TopK(S, r) forward, identity backward (straight-through)."""

    @staticmethod
    def forward(ctx: Any, scores: torch.Tensor, density: float, count_rule: str) -> torch.Tensor:  # type: ignore[override]
        return topk_mask(scores, density, count_rule).to(scores.dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        return grad_output, None, None


class ThresholdBinarizer(torch.autograd.Function):
    """M = 1[S > tau] (or 1[sigmoid(S) > tau]) with the 0.5% floor, identity backward (straight-through)."""

    @staticmethod
    def forward(ctx: Any, scores: torch.Tensor, threshold: float, sigmoid: bool) -> torch.Tensor:  # type: ignore[override]
        return threshold_mask(scores, threshold, sigmoid).to(scores.dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        return grad_output, None, None


class MaskedWeight(nn.Module):
    """The parametrization: W -> W * M(S), M from the owning pruner (which holds S outside the model, so
    the scores are not model parameters and get their own optimizer group)."""

    def __init__(self, owner: MaskOwner, target: str):
        super().__init__()
        self.owner = owner  # a plain object, not registered as a submodule
        self.target = target

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.owner.forward_mask(self.target, self.training).to(weight.dtype)
