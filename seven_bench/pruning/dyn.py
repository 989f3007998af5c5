"""Timing `dyn`: the mask evolves inside the training loop, updated right after optimizer steps."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from seven_bench.pruning.base import PruneContext, Pruner, apply_masks_, kept_fraction, step_gradients
from seven_bench.pruning.criteria import Seven
from seven_bench.pruning.schedules import seven_cubic
from seven_bench.pruning.selection import check_rule, global_topk

TRAJECTORY_POINTS = 400  # record at most about this many (step, target, achieved) points


@dataclass
class Trajectory:
    """(step, target keep, achieved keep) points of a dyn schedule, thinned to about TRAJECTORY_POINTS
    over the span being scheduled and always holding its last step, so long runs keep small records."""

    every: int = 1
    points: list[dict[str, Any]] = field(default_factory=list)

    def plan(self, span: int) -> None:
        self.every = max(1, span // TRAJECTORY_POINTS)

    def due(self, step: int, last_step: int) -> bool:
        return not self.points or step - self.points[-1]["step"] >= self.every or step == last_step

    def add(self, step: int, target_keep: float | None, achieved_keep: float, **extra: float) -> None:
        self.points.append({"step": step, "target_keep": target_keep, "achieved_keep": achieved_keep, **extra})


def fit_window(start: int, window: int, total_steps: int) -> tuple[int, int]:
    """Compress [start, start + window - 1) proportionally so its last pruning step is the last
    training step (the `fit_schedule` option for RTE/STS-B, whose paper window outlasts training)."""
    if start + window - 1 <= total_steps:
        return start, window
    new_start = int(math.floor(start * total_steps / (start + window)))
    return new_start, max(2, total_steps - new_start + 1)


class WindowedDynPruner(Pruner):
    """Shared bookkeeping for dyn pruners with a pruning window [start, start + window - 1): the
    window check, the fit_schedule option, the warning when training ends first, the trajectory."""

    timing = "dyn"

    def __init__(self, density: float, start: int, window: int, fit_schedule: bool = False):
        super().__init__(density)
        self.start, self.window = start, window
        self.paper_start, self.paper_window = start, window
        self.fit_schedule = fit_schedule
        self._trajectory = Trajectory()
        self.warnings: list[str] = []

    @property
    def trajectory(self) -> list[dict[str, Any]]:
        return self._trajectory.points

    def _plan(self, ctx: PruneContext) -> None:
        if self.fit_schedule:
            self.start, self.window = fit_window(self.start, self.window, ctx.total_steps)
        end = self.start + self.window - 1
        self._trajectory.plan(self.window - 1)
        if end > ctx.total_steps:
            last_k = ctx.total_steps - 1 - self.start
            reached = 1.0 - self.ratio_at(last_k) if last_k >= 0 else 0.0
            self.warnings.append(
                f"pruning window [{self.start}, {end}) outlasts the {ctx.total_steps} training steps: the schedule "
                f"stops at sparsity {reached:.3f} instead of {1 - self.density:.3f} (pass pruner.fit_schedule=true to compress it)")

    def ratio_at(self, k: int) -> float:
        raise NotImplementedError

    def in_window(self, step: int) -> bool:
        return self.start <= step < self.start + self.window - 1

    def _record(self, step: int, target_keep: float) -> None:
        assert self.masks is not None
        if self._trajectory.due(step, self.start + self.window - 2):
            self._trajectory.add(step, target_keep, kept_fraction(self.masks))

    def summary(self) -> dict[str, Any]:
        return {"start": self.start, "window": self.window, "fit_schedule": self.fit_schedule,
                "count_rule": getattr(self, "count_rule", None),
                "paper_start": self.paper_start, "paper_window": self.paper_window,
                "trajectory": self.trajectory, "warnings": self.warnings}


class SevenDyn(WindowedDynPruner):
    """SEVEN-dyn as in xiaojinying/SEVEN strategies/pruner.py: after each optimizer step inside the
    window, update (m, v, S) with the gradient just used and the updated weights, then cut globally to
    r_k = d + (1-d)(1-(k+1)/T)^3. Pruned S is zeroed and pruned W is 0: no resurrection."""

    name = "seven_dyn"

    def __init__(self, density: float, start: int, window: int, alpha1: float, alpha2: float, eps: float = 1e-9,
                 first_moment: str = "abs", correction: str = "full", fit_schedule: bool = False,
                 count_rule: str = "floor_ties"):
        super().__init__(density, start, window, fit_schedule)
        self.criterion = Seven(alpha1, alpha2, eps, first_moment, correction)
        self.count_rule = check_rule(count_rule)

    def ratio_at(self, k: int) -> float:
        return seven_cubic(self.density, k, self.window)

    def prepare(self, ctx: PruneContext) -> None:
        self.masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in ctx.prunable.items()}
        self._plan(ctx)

    @torch.no_grad()
    def after_optimizer_step(self, step: int, ctx: PruneContext) -> None:
        if not self.in_window(step):
            return
        k = step - self.start
        self.criterion.update(k + 1, {n: p.detach() for n, p in ctx.prunable.items()}, step_gradients(ctx.prunable))
        ratio = self.ratio_at(k)
        self.masks = global_topk(self.criterion.scores(), ratio, self.masks, self.count_rule)
        self.criterion.forget(self.masks)
        apply_masks_(ctx.prunable, self.masks)
        self._record(step, ratio)
