"""Score formulas, one function each (ALGORITHMS.md sections 2 and 4). Larger = keep.

The SEVEN update works in place on its state (m, v, S) because that state is three copies of the
prunable weights; every other formula is a plain function of tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

FIRST_MOMENTS = ("abs", "signed")
CORRECTIONS = ("full", "m_only", "v_only", "none")


def magnitude(w: torch.Tensor) -> torch.Tensor:
    return w.abs()


def snip(w: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Connection sensitivity |W * g| (SNIP's normalisation by the sum does not change the ranking)."""
    return (w * g).abs()


def grasp_keep(w: torch.Tensor, hg: torch.Tensor) -> torch.Tensor:
    """GraSP scores S = -W * (Hg) and removes the LARGEST S; keeping the largest of +W * Hg is the same."""
    return w * hg


@dataclass
class SevenState:
    """Per-tensor state of the SEVEN score: first and second moments and the accumulated score."""

    m: torch.Tensor
    v: torch.Tensor
    score: torch.Tensor

    @classmethod
    def zeros_like(cls, w: torch.Tensor) -> "SevenState":
        return cls(torch.zeros_like(w), torch.zeros_like(w), torch.zeros_like(w))


def seven_update_(state: SevenState, w: torch.Tensor, g: torch.Tensor, t: int, *, alpha1: float,
                  alpha2: float, eps: float = 1e-9, first_moment: str = "abs",
                  correction: str = "full") -> None:
    """One SEVEN step, t = 1, 2, ... (bias-correction exponent).

    m <- a1 m + (1-a1) |g|  (code; `signed` uses g as the paper's text does)
    v <- a2 v + (1-a2) g^2
    m_hat = m / (1 - a1^t),  v_hat = sqrt(v / (1 - a2^t)) + eps   (eps after the sqrt, as in the code)
    S <- S + |W * g * c|  with c = m_hat / v_hat (`full`), m_hat, 1 / v_hat, or 1 (`none`) for the
    score-function ablations of Table IV.
    """
    first = g.abs() if first_moment == "abs" else g
    state.m.mul_(alpha1).add_(first, alpha=1.0 - alpha1)
    state.v.mul_(alpha2).addcmul_(g, g, value=1.0 - alpha2)
    step = (w * g).abs_()
    if correction in ("full", "m_only"):
        step.mul_(state.m.abs()).div_(1.0 - alpha1 ** t)
    if correction in ("full", "v_only"):
        v_hat = state.v.div(1.0 - alpha2 ** t).sqrt_().add_(eps)
        step.div_(v_hat)
    state.score.add_(step)
