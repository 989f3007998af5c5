"""Movement pruning with learned scores (Sanh, Wolf, Rush, NeurIPS 2020), as the authors' code runs it:
huggingface/transformers `examples/research_projects/movement-pruning` (`emmental/modules/binarizer.py`,
`masked_nn.py`, `masked_run_glue.py`). ALGORITHMS.md section 4.6.

Every prunable tensor W gets a score tensor S (mask_init constant, mask_scale 0 -> S0 = 0) trained by the
optimizer with its own learning rate (`param_groups`). The forward uses W * M(S) with a straight-through
estimator: dL/dS = dL/d(W*M) * W, dL/dW = dL/d(W*M) * M.
  * hard movement (`topK`): M = TopK(S, r_t) per tensor (default) or, with `selection: global`, one
    threshold on all scores recomputed every `global_topk_frequency` steps and held in between
    (the original's `--global_topk`, which compares S with that value);
  * soft movement (`sigmoied_threshold`): M = 1[sigmoid(S) > tau_t], at least 0.5% of each tensor kept,
    and the loss gets lambda_t * mean_l ||sigmoid(S_l)||_1 / numel_l with lambda_t = final_lambda * tau_t / tau_f.
r_t (or tau_t) follows the cubic schedule with warm-ups, computed at the start of each step from the number
of optimizer steps done (`schedule_threshold(global_step)`). As in the original's `evaluate()`, evaluation
uses the final value (r_f, tau_f). Pruned weights keep their values (they are masked in the forward, not
zeroed), so a weight whose score climbs back comes back with its old value.

The masking is hooked into the model without rewriting it: `torch.nn.utils.parametrize` on the module
that owns each prunable Parameter (nn.Linear weights, CLIP's packed `in_proj_weight` alike). The prunable
Parameter objects stay the same objects (they become `parametrizations.<attr>.original`), so the
optimizer and the trainer's `apply_masks_` keep working; during training `masks` is None (the forward does
the masking). After the last optimizer step the final mask is baked into the weights (W <- W * M, the
parametrizations removed) and `masks` holds it, so the record's sparsity is measured on the real weights.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn
from torch.nn.utils import parametrize

from seven_bench.errors import UserError
from seven_bench.pruning.base import Masks, PruneContext, Pruner, kept_fraction, owning_modules
from seven_bench.pruning.binarizers import MIN_KEEP_FRACTION as MIN_KEEP_FRACTION
from seven_bench.pruning.binarizers import MaskedWeight, ThresholdBinarizer, TopKBinarizer, threshold_mask, topk_mask
from seven_bench.pruning.binarizers import global_score_threshold as global_score_threshold
from seven_bench.pruning.configured import from_config
from seven_bench.pruning.plans import CubicPlan, CubicWarmups, Trajectory
from seven_bench.pruning.selection import check_rule, resolve_count_rule
from seven_bench.pruning.seven_repo import build_seven_repo, variant


class _LearnedScorePruner(Pruner):
    """Scores, parametrizations, the per-step schedule value and the final bake, shared by both methods.
    The schedule is the cubic with warm-ups (plans.CubicWarmups) over keep ratios or sigmoid thresholds."""

    timing = "dyn"
    variant = "original"

    def __init__(
        self,
        density: float,
        warmup_steps: int,
        initial_warmup: float,
        final_warmup: float,
        scores_lr: float,
        mask_init: float,
        fit_schedule: bool,
        initial_value: float,
        final_value: float,
    ):
        super().__init__(density)
        self.schedule = CubicWarmups(
            warmup_steps, initial_warmup, final_warmup, initial_value, final_value, fit_schedule, self.name
        )
        self.initial_value, self.final_value = float(initial_value), float(final_value)
        self._trajectory = Trajectory()
        self.warnings: list[str] = []
        self.scores_lr = float(scores_lr)
        self.mask_init = float(mask_init)
        self.scores: dict[str, nn.Parameter] = {}
        self._owners: dict[str, tuple[nn.Module, str]] = {}
        self._prunable: dict[str, nn.Parameter] = {}
        self._eval_cache: dict[str, torch.Tensor] = {}
        self.step_value = initial_value  # r_t (movement) or tau_t (soft movement) of the step being run
        self.finalized = False

    # --- set-up -------------------------------------------------------------------------------------
    @property
    def plan(self) -> CubicPlan | None:
        return self.schedule.plan

    @property
    def trajectory(self) -> list[dict[str, Any]]:
        return self._trajectory.points

    def _plan(self, ctx: PruneContext) -> CubicPlan:
        self.warnings += self.schedule.prepare(ctx.total_steps, self.name)
        self._trajectory.plan(self.schedule.span)
        plan = self.plan
        assert plan is not None
        if plan.t_i + plan.t_f >= plan.total:
            self.warnings.append(
                f"{self.name}: the training forward does not reach the final value within the cell; as in the "
                f"original's evaluation, the final mask (at {plan.final}) is still what is evaluated and baked in"
            )
        return plan

    def prepare(self, ctx: PruneContext) -> None:
        self._plan(ctx)
        self._prunable = dict(ctx.prunable)
        self.scores = {
            n: nn.Parameter(torch.full(p.shape, self.mask_init, dtype=torch.float32, device=p.device))
            for n, p in ctx.prunable.items()
        }
        self._owners = owning_modules(ctx.model, ctx.prunable)
        for name, (module, attr) in self._owners.items():
            parametrize.register_parametrization(module, attr, MaskedWeight(self, name), unsafe=True)
            if getattr(module.parametrizations, attr).original is not ctx.prunable[name]:
                raise RuntimeError(f"parametrizing {name} replaced its Parameter object")
        self.masks = None  # the forward masks; nothing for the trainer to re-apply until the bake
        self._begin_step(0)

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": list(self.scores.values()), "lr": self.scores_lr, "weight_decay": 0.0}]

    # --- masks ----------------------------------------------------------------------------------------
    def forward_mask(self, name: str, training: bool) -> torch.Tensor:
        if training and not self.finalized:
            return self.train_mask(name)
        if name not in self._eval_cache:
            self._eval_cache[name] = self.final_mask(name).to(torch.float32)
        return self._eval_cache[name]

    def train_mask(self, name: str) -> torch.Tensor:
        """The differentiable (straight-through) mask of the current step."""
        raise NotImplementedError

    def final_mask(self, name: str) -> torch.Tensor:
        """The bool mask at the final value (evaluation and the bake)."""
        raise NotImplementedError

    def _begin_step(self, step: int) -> None:
        """Schedule value for the forward of optimizer step `step` (0-based = steps already done)."""
        assert self.plan is not None
        self.step_value = self.plan.at(step)
        self._scores_changed()

    def _scores_changed(self) -> None:
        """Drop what was derived from the scores: they moved with the last optimizer step."""
        self._eval_cache.clear()

    # --- training hooks -------------------------------------------------------------------------------
    def after_optimizer_step(self, step: int, ctx: PruneContext) -> None:
        last = ctx.total_steps - 1
        if self.finalized:
            return
        if self._trajectory.due(step, last):
            with torch.no_grad():
                current = {n: self.train_mask(n).detach().bool() for n in self.scores}
            self._record_step(step, kept_fraction(current))
        if step >= last:
            self.finalize(ctx)
            return
        self._begin_step(step + 1)

    def _record_step(self, step: int, kept: float) -> None:
        self._trajectory.add(step, self.step_value, kept)

    @torch.no_grad()
    def finalize(self, ctx: PruneContext | None = None) -> Masks:
        """Bake the final mask into the weights, remove the parametrizations, expose `masks`."""
        if self.finalized:
            assert self.masks is not None
            return self.masks
        self._scores_changed()  # an evaluation since the last step may have cached masks of older scores
        masks = {n: self.final_mask(n).bool() for n in self.scores}
        for name, (module, attr) in self._owners.items():
            parametrize.remove_parametrizations(module, attr, leave_parametrized=False)
            if getattr(module, attr) is not self._prunable[name]:
                raise RuntimeError(f"removing the parametrization of {name} replaced its Parameter object")
        for name, param in self._prunable.items():
            param.mul_(masks[name])
        self.finalized = True
        self._scores_changed()
        self.masks = masks
        return masks

    def summary(self) -> dict[str, Any]:
        out = {
            "variant": self.variant,
            **self.schedule.summary(),
            "trajectory": self.trajectory,
            "warnings": self.warnings,
        }
        out.update(
            scores_lr=self.scores_lr,
            mask_init=self.mask_init,
            finalized=self.finalized,
            hook="torch.nn.utils.parametrize",
            eval_uses_final_value=True,
            regrowth=True,
        )
        return out


class Movement(_LearnedScorePruner):
    """Hard movement pruning (`--pruning_method topK`), per-tensor TopK by default."""

    name = "movement"

    def __init__(
        self,
        density: float,
        warmup_steps: int,
        initial_warmup: float,
        final_warmup: float,
        *,
        selection: str = "layer",
        scores_lr: float = 1e-2,
        mask_init: float = 0.0,
        global_topk_frequency: int = 25,
        fit_schedule: bool = False,
        initial_ratio: float = 1.0,
        count_rule: str = "floor",
    ):
        if selection not in ("layer", "global"):
            raise UserError(f"pruner.selection={selection!r}: choose layer (per-tensor TopK) or global")
        if selection == "global" and count_rule != "floor":
            raise UserError(
                "pruner.count_rule applies to movement's per-tensor TopK; selection=global compares the "
                "scores with the original's kthvalue threshold: leave count_rule=original"
            )
        self.count_rule = check_rule(count_rule)
        super().__init__(
            density,
            warmup_steps,
            initial_warmup,
            final_warmup,
            scores_lr,
            mask_init,
            fit_schedule,
            initial_ratio,
            density,
        )
        self.selection = selection
        self.global_topk_frequency = max(1, int(global_topk_frequency))
        self.global_threshold: float | None = None
        self._final_threshold: float | None = None  # the global cut at r_f of the current scores

    def _scores_changed(self) -> None:
        super()._scores_changed()
        self._final_threshold = None

    def _begin_step(self, step: int) -> None:
        super()._begin_step(step)
        if self.selection != "global":
            return
        if self.step_value >= 1.0:
            self.global_threshold = float("-inf")  # the original's "-1e2": keep everything
        elif self.global_threshold in (None, float("-inf")) or step % self.global_topk_frequency == 0:
            self.global_threshold = global_score_threshold(list(self.scores.values()), self.step_value)

    def train_mask(self, name: str) -> torch.Tensor:
        scores = self.scores[name]
        if self.selection == "global":
            assert self.global_threshold is not None
            return ThresholdBinarizer.apply(scores, self.global_threshold, False)
        return TopKBinarizer.apply(scores, self.step_value, self.count_rule)

    def final_mask(self, name: str) -> torch.Tensor:
        scores = self.scores[name]
        if self.selection == "global":
            if self._final_threshold is None:
                self._final_threshold = global_score_threshold(list(self.scores.values()), self.final_value)
            return threshold_mask(scores, self._final_threshold, False)
        return topk_mask(scores, self.final_value, self.count_rule)

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out.update(selection=self.selection, method="topK", count_rule=self.count_rule)
        if self.selection == "global":
            out["global_topk_frequency"] = self.global_topk_frequency
        return out


class SoftMovement(_LearnedScorePruner):
    """Soft movement pruning (`--pruning_method sigmoied_threshold --regularization l1`). The cell's
    sparsity is NOT a control input: final_threshold and final_lambda decide what is pruned, and the record
    holds the sparsity reached (a warning says so when it misses the target by more than 1 point)."""

    name = "soft_movement"

    def __init__(
        self,
        density: float,
        warmup_steps: int,
        initial_warmup: float,
        final_warmup: float,
        *,
        final_threshold: float = 0.1,
        final_lambda: float = 400.0,
        initial_threshold: float = 0.0,
        scores_lr: float = 1e-2,
        mask_init: float = 0.0,
        fit_schedule: bool = False,
    ):
        if not 0.0 < final_threshold < 1.0:
            raise UserError(
                f"pruner.final_threshold={final_threshold} must be in (0, 1): it is compared with sigmoid(S)"
            )
        super().__init__(
            density,
            warmup_steps,
            initial_warmup,
            final_warmup,
            scores_lr,
            mask_init,
            fit_schedule,
            initial_threshold,
            final_threshold,
        )
        self.final_lambda = float(final_lambda)

    @property
    def step_lambda(self) -> float:
        return self.final_lambda * self.step_value / self.final_value

    def train_mask(self, name: str) -> torch.Tensor:
        return ThresholdBinarizer.apply(self.scores[name], self.step_value, True)

    def final_mask(self, name: str) -> torch.Tensor:
        return threshold_mask(self.scores[name], self.final_value, True)

    def penalty(self) -> torch.Tensor:
        """mean over tensors of ||sigmoid(S_l)||_1 / numel_l (the `regularization(mode='l1')` term)."""
        terms = [torch.sigmoid(s).sum() / s.numel() for s in self.scores.values()]
        return torch.stack(terms).mean()

    def extra_loss(self, ctx: PruneContext) -> torch.Tensor | None:
        if self.finalized or self.final_lambda == 0.0:
            return None
        lam = self.step_lambda
        if lam == 0.0:
            return None
        return lam * self.penalty()

    def _record_step(self, step: int, kept: float) -> None:
        self._trajectory.add(step, None, kept, threshold=self.step_value, regu_lambda=self.step_lambda)

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out.update(
            method="sigmoied_threshold",
            final_threshold=self.final_value,
            final_lambda=self.final_lambda,
            initial_threshold=self.initial_value,
            sparsity_control="indirect (final_threshold, final_lambda)",
        )
        if self.masks is not None:
            achieved = 1.0 - kept_fraction(self.masks)
            out["achieved_sparsity"] = achieved
            target = 1.0 - self.density
            if abs(achieved - target) > 0.01:
                out["warnings"] = list(out["warnings"]) + [
                    f"soft_movement controls sparsity only through final_threshold={self.final_value} and "
                    f"final_lambda={self.final_lambda}: it reached sparsity {achieved:.3f}, not the cell's target "
                    f"{target:.3f}; the record's achieved sparsity is what counts"
                ]
        return out


def build_movement(cfg: Mapping[str, Any], density: float, seed: int) -> Pruner:
    if variant(cfg) == "seven_repo":
        return build_seven_repo("movement", cfg, density)
    return from_config(Movement, cfg, density, count_rule=resolve_count_rule(cfg["count_rule"], "movement"))


def build_soft_movement(cfg: Mapping[str, Any], density: float, seed: int) -> Pruner:
    if variant(cfg) == "seven_repo":
        return build_seven_repo("soft_movement", cfg, density)
    if cfg["count_rule"] not in (None, "original"):
        raise UserError(
            "pruner=soft_movement keeps sigmoid(S) > tau: no count rule applies (sparsity is indirect); "
            "leave count_rule=original"
        )
    return from_config(SoftMovement, cfg, density)
