"""The SEVEN repository's re-implementations of its dynamic baselines (xiaojinying/SEVEN
`strategies/pruner.py` + `utils.py::train_eval_loop`, `--pruning_algo PLATON | movement | soft_movement`;
ALGORITHMS.md 2.6(6)), selected with `pruner.variant=seven_repo`.

Same loop as SEVEN-dyn (a `DynPruner` on `SevenWindow`): after each optimizer step inside [t_i, t_i + T - 1),
k = step - t_i, score, then one global cut to r_k = d + (1 - d)(1 - (k + 1)/T)^3 with SEVEN's threshold
function (pruned importances zeroed first, `topk` then `>=`: masks persist, no regrowth).
  platon:        g = |W g|, m <- a1 m + (1 - a1) g, v <- a2 v + (1 - a2)|g - m|, score m * v (not
                 accumulated; alpha1/alpha2 play PLATON's beta1/beta2; deltaT = 1).
  movement:      score |W g| of the step (no learned scores, no sign).
  soft_movement: the same ranking with g the task-loss gradient, plus the loss term
                 r_k * sum_l ||sigmoid(g_l * W_l)||_1 / n  (n = all prunable weights) inside the window,
                 differentiated through g with create_graph=True (second order: roughly doubles the
                 cost of the backward pass).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from seven_bench.errors import UserError
from seven_bench.pruning.base import PruneContext, step_gradients
from seven_bench.pruning.configured import from_config
from seven_bench.pruning.dyn import DynPruner
from seven_bench.pruning.plans import SevenWindow
from seven_bench.pruning.selection import resolve_count_rule

Tensors = dict[str, torch.Tensor]
METHODS = ("platon", "movement", "soft_movement")
VARIANTS = ("original", "seven_repo")


class SevenRepoScore:
    """|W g| of the step (movement, soft_movement), or the SEVEN repo's PLATON: m * v of EMAs of |W g|."""

    signal = "grad"

    def __init__(self, method: str, alpha1: float, alpha2: float) -> None:
        self.method, self.alpha1, self.alpha2 = method, float(alpha1), float(alpha2)
        self.m: Tensors = {}
        self.v: Tensors = {}
        self._scores: Tensors = {}

    def update(self, t: int, weights: Tensors, signal: Tensors | None) -> None:
        assert signal is not None
        self._scores = {}
        for n, w in weights.items():
            g = (w * signal[n]).abs_()
            if self.method == "platon":
                if n not in self.m:
                    self.m[n], self.v[n] = torch.zeros_like(g), torch.zeros_like(g)
                self.m[n].mul_(self.alpha1).add_(g, alpha=1.0 - self.alpha1)
                self.v[n].mul_(self.alpha2).add_((g - self.m[n]).abs_(), alpha=1.0 - self.alpha2)
                self._scores[n] = self.m[n] * self.v[n]
            else:
                self._scores[n] = g

    def scores(self) -> Tensors:
        return self._scores

    def forget(self, masks: Tensors) -> None:
        """Recomputed every step; SEVEN's cut zeroes pruned importances itself (count rule floor_ties)."""


class SevenRepoDyn(DynPruner):
    variant = "seven_repo"

    def __init__(
        self,
        method: str,
        density: float,
        start: int,
        window: int,
        alpha1: float = 0.8,
        alpha2: float = 0.9,
        fit_schedule: bool = False,
        count_rule: str = "floor_ties",
    ):
        if method not in METHODS:
            raise ValueError(f"unknown SEVEN-repo method {method!r}")
        if start is None or window is None or int(start) < 0 or int(window) < 2:
            raise UserError(
                f"pruner={method} variant=seven_repo has no SEVEN window for this task: pass "
                f"pruner.start=<t_i> and pruner.window=<T>"
            )
        super().__init__(
            method,
            density,
            SevenWindow(density, start, window, fit_schedule),
            SevenRepoScore(method, alpha1, alpha2),
            count_rule=count_rule,
        )
        self.method = method
        self.second_order = method == "soft_movement"
        self._task_grads: Tensors | None = None
        self._next_step = 0
        self.penalty_steps = 0

    m = property(lambda self: self.criterion.m)
    v = property(lambda self: self.criterion.v)

    def prepare(self, ctx: PruneContext) -> None:
        super().prepare(ctx)
        self._next_step = 0

    def extra_loss(self, ctx: PruneContext) -> torch.Tensor | None:
        step = self._next_step
        plan: SevenWindow = self.plan  # type: ignore[assignment]
        if self.method != "soft_movement" or not plan.in_window(step):
            return None
        loss = ctx.step_loss
        if loss is None:
            raise RuntimeError(
                "soft_movement variant=seven_repo needs the step's task loss: the trainer must set "
                "PruneContext.step_loss before calling extra_loss"
            )
        names = list(ctx.prunable)
        params = [ctx.prunable[n] for n in names]
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        reg = loss.new_zeros(())
        numel = 0
        self._task_grads = {}
        for name, p, g in zip(names, params, grads):
            if g is None:
                g = torch.zeros_like(p)
            self._task_grads[name] = g.detach()
            reg = reg + torch.sigmoid(g * p).sum()  # ||sigmoid(g * W)||_1: every entry is positive
            numel += p.numel()
        self.penalty_steps += 1
        return plan.ratio_at(step - plan.start) * reg / numel

    def step_signal(self, ctx: PruneContext) -> Tensors:
        """soft_movement ranks with the create_graph gradient of the task loss; the others with .grad."""
        if self.method == "soft_movement" and self._task_grads is not None:
            return self._task_grads
        return step_gradients(self.targets)

    @torch.no_grad()
    def after_optimizer_step(self, step: int, ctx: PruneContext) -> None:
        self._next_step = step + 1
        super().after_optimizer_step(step, ctx)
        self._task_grads = None  # set by extra_loss for this step only (inside the window, where it is used)

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out.update(method=self.method, schedule="seven_cubic_window")
        if self.method == "platon":
            out.update(alpha1=self.criterion.alpha1, alpha2=self.criterion.alpha2)  # type: ignore[attr-defined]
        if self.method == "soft_movement":
            out.update(penalty_steps=self.penalty_steps, second_order=True)
        return out


def variant(cfg: Mapping[str, Any]) -> str:
    value = str(cfg["variant"])
    if value not in VARIANTS:
        raise UserError(f"pruner.variant={value!r}: choose {' or '.join(VARIANTS)}")
    return value


def build_seven_repo(method: str, cfg: Mapping[str, Any], density: float) -> SevenRepoDyn:
    return from_config(
        SevenRepoDyn, cfg, method, density, count_rule=resolve_count_rule(cfg["count_rule"], f"{method}/seven_repo")
    )
