"""Criteria: stateful scores per prunable tensor, fed (weights, signal) once per pruning step.

`signal` says what the driver must compute for the criterion: nothing, the mean gradient, or GraSP's
Hessian-gradient product. The formulas themselves live in `scores.py`.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from seven_bench.errors import UserError
from seven_bench.pruning import ckernels
from seven_bench.pruning import scores as F
from seven_bench.pruning.fused_seven import seven_update_fused_
from seven_bench.pruning.scores import SevenState

Tensors = dict[str, torch.Tensor]


class Criterion(Protocol):
    signal: str  # "none" | "grad" | "hessian_grad"

    def update(self, t: int, weights: Tensors, signal: Tensors | None) -> None: ...

    def scores(self) -> Tensors: ...

    def forget(self, masks: Tensors) -> None:
        """Drop what was learned about pruned entries (no-resurrection methods)."""


def describe(criterion: Criterion) -> dict[str, Any]:
    """What a criterion adds to the run record's pruner section (most add nothing)."""
    summary = getattr(criterion, "summary", None)
    return summary() if callable(summary) else {}


class _Instant:
    """Criteria whose score is a function of the latest step alone (nothing accumulates)."""

    signal = "none"

    def __init__(self) -> None:
        self._scores: Tensors = {}

    def update(self, t: int, weights: Tensors, signal: Tensors | None) -> None:
        self._scores = {n: self.score(w, None if signal is None else signal[n]) for n, w in weights.items()}

    def score(self, w: torch.Tensor, signal: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def scores(self) -> Tensors:
        return self._scores

    def forget(self, masks: Tensors) -> None:
        pass


class Magnitude(_Instant):
    def score(self, w: torch.Tensor, signal: torch.Tensor | None) -> torch.Tensor:
        return F.magnitude(w)


class Random(_Instant):
    """i.i.d. uniform scores from a seeded generator: a global random mask, uniform per layer in expectation."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = seed

    def update(self, t: int, weights: Tensors, signal: Tensors | None) -> None:
        gen = torch.Generator().manual_seed(self.seed)
        self._scores = {n: torch.rand(w.shape, generator=gen).to(w.device) for n, w in weights.items()}


class Snip(_Instant):
    """|W * g| of the latest step only (SNIP one-shot; iterative SNIP and FORCE recompute it each step)."""

    signal = "grad"

    def score(self, w: torch.Tensor, signal: torch.Tensor | None) -> torch.Tensor:
        assert signal is not None
        return F.snip(w, signal)


class Grasp(_Instant):
    """+W * Hg, kept largest (GraSP removes the largest -W * Hg)."""

    signal = "hessian_grad"

    def score(self, w: torch.Tensor, signal: torch.Tensor | None) -> torch.Tensor:
        assert signal is not None
        return F.grasp_keep(w, signal)


class Seven:
    """SEVEN's accumulated, noise-corrected score (m, v, S per tensor)."""

    signal = "grad"

    def __init__(
        self, alpha1: float, alpha2: float, eps: float = 1e-9, first_moment: str = "abs", correction: str = "full"
    ) -> None:
        if first_moment not in F.FIRST_MOMENTS:
            raise UserError(
                f"pruner.first_moment={first_moment!r}: choose abs (the authors' code) or signed (the paper's text)"
            )
        if correction not in F.CORRECTIONS:
            raise UserError(f"pruner.correction={correction!r}: choose one of {', '.join(F.CORRECTIONS)}")
        self.kw = dict(alpha1=alpha1, alpha2=alpha2, eps=eps, first_moment=first_moment, correction=correction)
        self.state: dict[str, SevenState] = {}
        self.routes: set[str] = set()  # which implementation(s) of the update ran: fused_c, eager

    def update(self, t: int, weights: Tensors, signal: Tensors | None) -> None:
        assert signal is not None
        for name, w in weights.items():
            if name not in self.state:
                self.state[name] = SevenState.zeros_like(w)
            self.routes.add(seven_update_fused_(self.state[name], w, signal[name], t, **self.kw))

    def summary(self) -> dict[str, Any]:
        """Which implementation ran the update: the C kernels, the eager torch ops (the same bits) or, where some
        tensors were not the kernels' (on a GPU, not float32), both."""
        return {"seven_update": "+".join(sorted(self.routes)) or ckernels.kernel_name()}

    def scores(self) -> Tensors:
        return {n: s.score for n, s in self.state.items()}

    def forget(self, masks: Tensors) -> None:
        """The code zeroes S of pruned entries (S[M == 0] <- 0), so they never come back."""
        for name, state in self.state.items():
            ckernels.mask_mul_(state.score, masks[name])

    def state_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for s in self.state.values() for t in (s.m, s.v, s.score))
