"""Timing `dyn`: one pruner for every prune-while-fine-tuning method. A `DynPruner` is a plan (when and to
what keep ratio, plans.py), a criterion (what to keep, criteria.py), a selection scope and count rule
(selection.py), and whether pruned weights may regrow. After each optimizer step, while `.grad` still
holds that step's gradient and the weights are the updated ones:

    decision = plan.decide(step)
    decision.update -> criterion.update(t, W, signal)      (signal: the step's gradient by default)
    decision.cut    -> masks = select(criterion.scores(), ratio, eligible, count_rule); zero pruned W

Persistent masks (`regrow=False`: SEVEN, GMP, the SEVEN repo's variants) pass the current mask as the
eligible set and the criterion forgets pruned entries; regrowing ones (PLATON) cut among all weights and
expose a mask only on the steps they cut, so pruned weights train on until the next cut.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from seven_bench.pruning.base import Masks, PruneContext, Pruner, kept_fraction, step_gradients
from seven_bench.pruning.criteria import Criterion, Seven, describe
from seven_bench.pruning.plans import Plan, SevenWindow, Trajectory
from seven_bench.pruning.selection import SELECTIONS, check_rule, check_selection

TargetSet = Callable[[PruneContext], dict[str, nn.Parameter]]


class DynPruner(Pruner):
    timing = "dyn"
    variant = "original"

    def __init__(
        self,
        name: str,
        density: float,
        plan: Plan,
        criterion: Criterion,
        *,
        selection: str = "global",
        count_rule: str = "floor_ties",
        regrow: bool = False,
        target_set: TargetSet | None = None,
    ):
        super().__init__(density)
        self.name = name
        self.plan = plan
        self.criterion = criterion
        self.selection = check_selection(selection)
        self.count_rule = check_rule(count_rule)
        self.regrow = regrow
        self.target_set = target_set
        self.targets: dict[str, nn.Parameter] = {}
        self.own_masks: Masks | None = None  # the last cut over `targets` (PLATON's own set may differ)
        self.mask_updates = 0
        self.last_mask_step: int | None = None
        self._others: Masks = {}  # prunable tensors outside the target set: kept whole
        self._prunable_names: list[str] = []
        self._trajectory = Trajectory()
        self.warnings: list[str] = []

    @property
    def trajectory(self) -> list[dict[str, Any]]:
        return self._trajectory.points

    def prepare(self, ctx: PruneContext) -> None:
        self.targets = self.target_set(ctx) if self.target_set else dict(ctx.prunable)
        self._others = {
            n: torch.ones_like(p, dtype=torch.bool) for n, p in ctx.prunable.items() if n not in self.targets
        }
        self._prunable_names = list(ctx.prunable)
        self.warnings += self.plan.prepare(ctx.total_steps, self.name)
        self._trajectory.plan(self.plan.span)
        self.own_masks = (
            None if self.regrow else {n: torch.ones_like(p, dtype=torch.bool) for n, p in self.targets.items()}
        )
        self.masks = None if self.regrow else self._expose(self.own_masks)

    def _expose(self, own: Masks) -> Masks:
        """The cut over the target set as masks over the model's prunable set (others kept whole)."""
        if not self._others and len(own) == len(self._prunable_names):
            return own
        return {n: own[n] if n in own else self._others[n] for n in self._prunable_names}

    def step_signal(self, ctx: PruneContext) -> dict[str, torch.Tensor]:
        """The signal the criterion is fed after a step: that step's gradient (zeros where none)."""
        return step_gradients(self.targets)

    @torch.no_grad()
    def after_optimizer_step(self, step: int, ctx: PruneContext) -> None:
        decision = self.plan.decide(step)
        if decision.update:
            signal = None if self.criterion.signal == "none" else self.step_signal(ctx)
            self.criterion.update(decision.t, {n: p.detach() for n, p in self.targets.items()}, signal)
        if decision.cut:
            assert decision.ratio is not None
            own = SELECTIONS[self.selection](
                self.criterion.scores(),
                decision.ratio,
                None if self.regrow else self.own_masks,
                count_rule=self.count_rule,
            )
            if not self.regrow:
                self.criterion.forget(own)
            for n, p in self.targets.items():
                p.masked_fill_(~own[n], 0.0)
            self.own_masks = own
            self.masks = self._expose(own)
            self.mask_updates += 1
            self.last_mask_step = step
        elif self.regrow:
            self.masks = None  # pruned weights move freely (and may regrow) until the next cut
        recorded = decision.cut or (self.plan.record_every_step and decision.ratio is not None)
        if recorded and self.own_masks is not None and self._trajectory.due(step, self.plan.last_step):
            self._trajectory.add(step, decision.ratio, kept_fraction(self.own_masks))

    def summary(self) -> dict[str, Any]:
        return {
            **describe(self.criterion),
            "variant": self.variant,
            **self.plan.summary(),
            "selection": self.selection,
            "count_rule": self.count_rule,
            "regrowth": self.regrow,
            "trajectory": self.trajectory,
            "warnings": self.warnings,
        }


class SevenDyn(DynPruner):
    """SEVEN-dyn as in xiaojinying/SEVEN strategies/pruner.py: after each optimizer step inside the
    window, update (m, v, S) with the gradient just used and the updated weights, then cut globally to
    r_k = d + (1-d)(1-(k+1)/T)^3. Pruned S is zeroed and pruned W is 0: no resurrection."""

    def __init__(
        self,
        density: float,
        start: int,
        window: int,
        alpha1: float,
        alpha2: float,
        eps: float = 1e-9,
        first_moment: str = "abs",
        correction: str = "full",
        fit_schedule: bool = False,
        count_rule: str = "floor_ties",
    ):
        super().__init__(
            "seven_dyn",
            density,
            SevenWindow(density, start, window, fit_schedule),
            Seven(alpha1, alpha2, eps, first_moment, correction),
            count_rule=count_rule,
        )

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        del out["variant"]
        return out
