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


def seven_update_(
    state: SevenState,
    w: torch.Tensor,
    g: torch.Tensor,
    t: int,
    *,
    alpha1: float,
    alpha2: float,
    eps: float = 1e-9,
    first_moment: str = "abs",
    correction: str = "full",
) -> None:
    """One SEVEN step, t = 1, 2, ... (bias-correction exponent).

    m <- a1 m + (1-a1) |g|  (code; `signed` uses g as the paper's text does)
    v <- a2 v + (1-a2) g^2
    m_hat = m / (1 - a1^t),  v_hat = sqrt(v / (1 - a2^t)) + eps   (eps after the sqrt, as in the code)
    S <- S + |W * g * c|  with c = m_hat / v_hat (`full`), m_hat, 1 / v_hat, or 1 (`none`) for the
    score-function ablations of Table IV.

    Every elementwise operation is the one `strategies/pruner.py` performs, in its order (a1*m and
    (1-a1)*|g| rounded separately, then ((W*|g|)*m_hat)/v_hat), so S matches the original to the bit
    and its threshold ties fall where the original's do. In place where the original's temporaries allow.
    """
    g_abs = g.abs()
    first = g_abs if first_moment == "abs" else g
    state.m.mul_(alpha1).add_(first * (1.0 - alpha1))
    state.v.mul_(alpha2).add_(g_abs.square().mul_(1.0 - alpha2))
    step = g_abs.mul_(w) if w.dtype == g_abs.dtype else (w * g_abs)
    if correction in ("full", "m_only"):
        step.mul_(state.m / (1.0 - alpha1**t))
    if correction in ("full", "v_only"):
        step.div_((state.v / (1.0 - alpha2**t)).sqrt_().add_(eps))
    state.score.add_(step.abs_())
