"""Dynamic (prune-while-fine-tuning) baselines of the paper's Table III, as their own papers define them,
plus the re-implementations found in the SEVEN repository (`variant: seven_repo`).

* `CubicDynPruner`: bookkeeping shared by the methods on the Zhu & Gupta cubic schedule with warm-ups
  (movement pruning's `schedule_threshold`, PLATON's `schedule_threshold_comb`, ALGORITHMS.md section 3):
  t_i = initial_warmup * warmup_steps, t_f = final_warmup * warmup_steps, T = the cell's training steps.
* `Platon`: QingruZhang/PLATON (`Pruner.py`, `GLUE/mt_dnn/prune_model.py`, `GLUE/train.py`).
* `Gmp`: gradual magnitude pruning on the same cubic schedule (the "Progressive" rows).
* `SevenRepoDyn`: xiaojinying/SEVEN `strategies/pruner.py` + `utils.py::train_eval_loop` for
  `--pruning_algo PLATON | movement | soft_movement`: SEVEN's window [t_i, t_i + T - 1), persistent masks.

Movement and soft movement with learned scores live in `movement.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from seven_bench.errors import UserError
from seven_bench.pruning.base import Masks, PruneContext, Pruner, apply_masks_, kept_fraction, step_gradients
from seven_bench.pruning.dyn import Trajectory, WindowedDynPruner
from seven_bench.pruning.schedules import cubic, seven_cubic
from seven_bench.pruning.selection import SELECTIONS, check_rule, global_topk, resolve_count_rule

Config = Mapping[str, Any]
VARIANTS = ("original", "seven_repo")

# PLATON's own prunable set (Pruner.py `mask_param_name`): weights AND biases of these modules; no pooler.
PLATON_PARAM_NAMES = ("attention.self", "attention.output.dense", "output.dense", "intermediate.dense")


# --------------------------------------------------------------------------------------------------
# Cubic schedule with warm-ups


@dataclass(frozen=True)
class CubicPlan:
    """The cubic schedule of one cell: `at(t)` is r0 for t <= t_i, r_f for t > total - t_f, cubic between."""

    total: int
    warmup_steps: int
    t_i: int
    t_f: int
    initial: float
    final: float

    def at(self, t: int) -> float:
        return cubic(t, total_steps=self.total, initial_warmup_steps=self.t_i, final_warmup_steps=self.t_f,
                     initial_ratio=self.initial, final_ratio=self.final)

    def as_dict(self) -> dict[str, Any]:
        return {"total_steps": self.total, "warmup_steps": self.warmup_steps, "t_i": self.t_i, "t_f": self.t_f,
                "initial": self.initial, "final": self.final}


def fit_warmups(warmup_steps: int, initial_warmup: float, final_warmup: float, total: int) -> int:
    """`fit_schedule` for the cubic-with-warm-ups schedule: when t_i + t_f leaves no ramp inside the
    cell's steps, shrink warmup_steps so the ramp gets one share of (initial_warmup + final_warmup + 1)."""
    if (initial_warmup + final_warmup) * warmup_steps < total:
        return warmup_steps
    return max(0, int(total // (initial_warmup + final_warmup + 1)))


class CubicDynPruner(Pruner):
    """Shared bookkeeping for the cubic-with-warm-ups pruners: planning (and `fit_schedule`), warnings when
    the schedule does not fit the cell's steps, and a thinned (step, target, achieved) trajectory."""

    timing = "dyn"
    variant = "original"

    def __init__(self, density: float, warmup_steps: int, initial_warmup: float, final_warmup: float,
                 fit_schedule: bool = False, initial_value: float = 1.0, final_value: float | None = None):
        super().__init__(density)
        if warmup_steps is None or int(warmup_steps) < 0:
            raise UserError(f"pruner={self.name} has no per-task warmup_steps for this task: pass "
                            f"pruner.warmup_steps=<steps> (t_i = initial_warmup * warmup_steps)")
        self.warmup_steps = int(warmup_steps)
        self.paper_warmup_steps = self.warmup_steps
        self.initial_warmup, self.final_warmup = float(initial_warmup), float(final_warmup)
        self.fit_schedule = bool(fit_schedule)
        self.initial_value = float(initial_value)
        self.final_value = float(density if final_value is None else final_value)
        self.plan: CubicPlan | None = None
        self._trajectory = Trajectory()
        self.warnings: list[str] = []

    @property
    def trajectory(self) -> list[dict[str, Any]]:
        return self._trajectory.points

    def _plan(self, ctx: PruneContext) -> CubicPlan:
        total = int(ctx.total_steps)
        if self.fit_schedule:
            self.warmup_steps = fit_warmups(self.warmup_steps, self.initial_warmup, self.final_warmup, total)
        t_i = int(self.initial_warmup * self.warmup_steps)
        t_f = int(self.final_warmup * self.warmup_steps)
        self.plan = CubicPlan(total, self.warmup_steps, t_i, t_f, self.initial_value, self.final_value)
        if t_i >= total:
            self.warnings.append(
                f"{self.name}: the cubic schedule starts after step t_i={t_i} but the cell trains {total} steps: "
                f"nothing is pruned (pass pruner.fit_schedule=true to compress the warm-ups)")
        elif t_i + t_f >= total:
            self.warnings.append(
                f"{self.name}: t_i={t_i} + t_f={t_f} leave no cubic ramp inside the {total} training steps: the "
                f"schedule jumps to its final value after step {t_i} (pass pruner.fit_schedule=true)")
        self._trajectory.plan(total)
        return self.plan

    def summary(self) -> dict[str, Any]:
        return {"variant": self.variant, "schedule": "cubic_with_warmups",
                "plan": None if self.plan is None else self.plan.as_dict(),
                "initial_warmup": self.initial_warmup, "final_warmup": self.final_warmup,
                "paper_warmup_steps": self.paper_warmup_steps, "fit_schedule": self.fit_schedule,
                "trajectory": self.trajectory, "warnings": self.warnings}


# --------------------------------------------------------------------------------------------------
# PLATON (original)


def platon_param_set(model: nn.Module) -> dict[str, nn.Parameter]:
    """PLATON's prunable set: every trainable parameter whose name contains one of PLATON_PARAM_NAMES."""
    return {n: p for n, p in model.named_parameters()
            if p.requires_grad and any(key in n for key in PLATON_PARAM_NAMES)}


class Platon(CubicDynPruner):
    """PLATON (Zhang et al., ICML 2022), as QingruZhang/PLATON runs it on GLUE.

    After every optimizer step, with the MT-DNN step counter t = step + 1 (`self.updates` is incremented
    before `optimizer.step()`), for every prunable tensor:
      local = t % deltaT
      local == 0: Ibar <- b1 Ibar + (1 - b1) ipt;  Ubar <- b2 Ubar + (1 - b2) |ipt - Ibar|  (new Ibar);
                  ipt <- |W g|                       (a new window starts)
      else:       ipt <- (ipt * local + |W g|) / (local + 1)   (running mean over the window)
    W is the just-updated weight and g the gradient of the step. The mask is recomputed at t % deltaT == 0
    inside the cubic ramp and at every step of the final phase (t > T - t_f), as one global cut of the
    score Ibar * Ubar (beta2 = 1: Ibar; beta2 = 2: Ibar * sqrt(running mean of (ipt - Ibar)^2); beta2 = 0:
    Ibar * |ipt - Ibar|), implemented like `p.data.masked_fill_(S < thr, 0)`.

    There is no persistent mask: a zeroed weight still gets gradient updates until the next
    recomputation and may be selected again (regrowth). So `self.masks` holds the new mask only on the
    steps where it is recomputed (the trainer re-applies it right away, which is the original's zeroing)
    and is None in between, so the trainer does not pin pruned weights at zero.

    The cut is the original's (`count_rule: original` = `kthvalue(int(n (1 - r)))` then `masked_fill(S < thr)`,
    one or two more than round(r n)); `count_rule: exact` keeps exactly round(r n). Scores live on the
    parameters' device.
    """

    name = "platon"

    def __init__(self, density: float, warmup_steps: int, initial_warmup: float, final_warmup: float, beta1: float,
                 beta2: float, delta_t: int, prunable_set: str = "suite", fit_schedule: bool = False,
                 initial_ratio: float = 1.0, count_rule: str = "kthvalue_ties"):
        super().__init__(density, warmup_steps, initial_warmup, final_warmup, fit_schedule, initial_ratio, density)
        self.count_rule = check_rule(count_rule)
        if prunable_set not in ("suite", "platon"):
            raise UserError(f"pruner.prunable_set={prunable_set!r}: choose suite (the benchmark's set) or platon "
                            f"(PLATON's own: {', '.join(PLATON_PARAM_NAMES)} weights and biases)")
        if int(delta_t) < 1:
            raise UserError(f"pruner.deltaT={delta_t} must be >= 1")
        self.beta1, self.beta2, self.delta_t = float(beta1), float(beta2), int(delta_t)
        self.prunable_set = prunable_set
        self.targets: dict[str, nn.Parameter] = {}
        self.ipt: dict[str, torch.Tensor] = {}
        self.exp_avg_ipt: dict[str, torch.Tensor] = {}
        self.exp_avg_unc: dict[str, torch.Tensor] = {}
        self.own_masks: Masks | None = None
        self.mask_updates = 0
        self.last_mask_step: int | None = None
        self._suite_ones: Masks = {}

    def prepare(self, ctx: PruneContext) -> None:
        if self.prunable_set == "platon":
            self.targets = platon_param_set(ctx.model)
            if not self.targets:
                raise UserError("pruner.prunable_set=platon matches no parameter of this model (it names BERT "
                                "modules: " + ", ".join(PLATON_PARAM_NAMES) + "): use prunable_set=suite")
            self._suite_ones = {n: torch.ones_like(p, dtype=torch.bool) for n, p in ctx.prunable.items()
                                if n not in self.targets}
        else:
            self.targets = dict(ctx.prunable)
        for n, p in self.targets.items():
            self.ipt[n] = torch.zeros_like(p, dtype=torch.float32)
            self.exp_avg_ipt[n] = torch.zeros_like(p, dtype=torch.float32)
            self.exp_avg_unc[n] = torch.zeros_like(p, dtype=torch.float32)
        self._plan(ctx)
        self.masks = None

    # the schedule, in the MT-DNN step count t = step + 1
    def schedule(self, t: int) -> tuple[float, bool]:
        """(keep ratio, whether the mask is recomputed at t), as `schedule_threshold_comb`."""
        assert self.plan is not None
        plan = self.plan
        if t <= plan.t_i:
            return plan.initial, False
        if t > plan.total - plan.t_f:
            return plan.final, True
        return plan.at(t), t % self.delta_t == 0

    @torch.no_grad()
    def update_importance(self, t: int) -> None:
        local, update_step = t % self.delta_t, t // self.delta_t
        grads = step_gradients(self.targets)
        for n, p in self.targets.items():
            sens = (p.detach().float() * grads[n].float()).abs_()
            if local == 0:
                self.exp_avg_ipt[n].mul_(self.beta1).add_(self.ipt[n], alpha=1.0 - self.beta1)
                if 0.0 < self.beta2 < 1.0:
                    self.exp_avg_unc[n].mul_(self.beta2).add_((self.ipt[n] - self.exp_avg_ipt[n]).abs_(),
                                                              alpha=1.0 - self.beta2)
                elif self.beta2 == 2.0:
                    self.exp_avg_unc[n].mul_(update_step).add_((self.ipt[n] - self.exp_avg_ipt[n]).pow_(2)).div_(update_step + 1)
                self.ipt[n] = sens
            else:
                self.ipt[n].mul_(local).add_(sens).div_(local + 1)

    def scores(self) -> dict[str, torch.Tensor]:
        if 0.0 < self.beta2 < 1.0:
            return {n: self.exp_avg_ipt[n] * self.exp_avg_unc[n] for n in self.targets}
        if self.beta2 == 1.0:
            return dict(self.exp_avg_ipt)
        if self.beta2 == 2.0:
            return {n: self.exp_avg_ipt[n] * self.exp_avg_unc[n].sqrt() for n in self.targets}
        return {n: self.exp_avg_ipt[n] * (self.ipt[n] - self.exp_avg_ipt[n]).abs() for n in self.targets}

    @torch.no_grad()
    def after_optimizer_step(self, step: int, ctx: PruneContext) -> None:
        t = step + 1
        self.update_importance(t)
        ratio, recompute = self.schedule(t)
        if not recompute:
            self.masks = None  # pruned weights move freely (and may regrow) until the next recomputation
            return
        own = global_topk(self.scores(), ratio, None, self.count_rule)  # no eligibility: weights may regrow
        for n, p in self.targets.items():
            p.masked_fill_(~own[n], 0.0)
        self.own_masks = own
        self.masks = own if self.prunable_set == "suite" else {
            n: own[n] if n in own else self._suite_ones[n] for n in ctx.prunable}
        self.mask_updates += 1
        self.last_mask_step = step
        if self._trajectory.due(step, ctx.total_steps - 1):
            self._trajectory.add(step, ratio, kept_fraction(own))

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        own_set = {"tensors": len(self.targets), "weights": int(sum(p.numel() for p in self.targets.values()))}
        if self.own_masks is not None:
            own_set["achieved_sparsity"] = 1.0 - kept_fraction(self.own_masks)
        out.update(count_rule=self.count_rule, beta1=self.beta1, beta2=self.beta2, deltaT=self.delta_t, prunable_set=self.prunable_set,
                   own_set=own_set, mask_updates=self.mask_updates, last_mask_step=self.last_mask_step,
                   regrowth=True, step_counter="t = step + 1 (MT-DNN updates)")
        warnings = list(out["warnings"])
        if self.plan is not None and self.last_mask_step is None:
            warnings.append("platon: the schedule never recomputed a mask within the cell: nothing was pruned")
        elif self.plan is not None and self.last_mask_step != self.plan.total - 1:
            warnings.append(
                f"platon: the last mask recomputation was at step {self.last_mask_step} of {self.plan.total}: weights "
                f"zeroed then kept training (PLATON has no persistent mask), so the achieved sparsity is counted "
                f"from exact zeros")
        if self.prunable_set == "platon":
            warnings.append(
                "platon: prunable_set=platon prunes PLATON's own set (weights and biases, no pooler); "
                "record.sparsity is over the suite's set, pruner.own_set.achieved_sparsity over PLATON's")
        out["warnings"] = warnings
        return out


# --------------------------------------------------------------------------------------------------
# Gradual magnitude pruning


class Gmp(CubicDynPruner):
    """Gradual magnitude pruning (Zhu & Gupta 2017; movement repo `--pruning_method magnitude` schedule):
    after optimizer step s the mask for the next forward keeps the largest |W| at r(s + 1) (global by
    default), recomputed every `update_frequency` steps and always on the last step, so the cell ends
    exactly at d. Pruned weights are zero and stay pruned (the trainer re-applies the mask)."""

    name = "gmp"

    def __init__(self, density: float, warmup_steps: int, initial_warmup: float, final_warmup: float,
                 selection: str = "global", update_frequency: int = 1, fit_schedule: bool = False,
                 count_rule: str = "floor"):
        super().__init__(density, warmup_steps, initial_warmup, final_warmup, fit_schedule, 1.0, density)
        self.count_rule = check_rule(count_rule)
        if selection not in SELECTIONS:
            raise UserError(f"pruner.selection={selection!r}: choose {' or '.join(SELECTIONS)}")
        self.selection = selection
        self.update_frequency = max(1, int(update_frequency))
        self._kept_ratio = 1.0

    def prepare(self, ctx: PruneContext) -> None:
        self.masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in ctx.prunable.items()}
        self._plan(ctx)

    @torch.no_grad()
    def after_optimizer_step(self, step: int, ctx: PruneContext) -> None:
        assert self.plan is not None and self.masks is not None
        last = ctx.total_steps - 1
        ratio = self.plan.at(step + 1)  # the keep ratio of the next forward (movement repo convention)
        due = (step + 1) % self.update_frequency == 0 or step == last
        if due and ratio < self._kept_ratio:
            scores = {n: p.detach().abs() for n, p in ctx.prunable.items()}
            self.masks = SELECTIONS[self.selection](scores, ratio, self.masks, self.count_rule)
            apply_masks_(ctx.prunable, self.masks)
            self._kept_ratio = ratio
        if self._trajectory.due(step, last):
            self._trajectory.add(step, ratio, kept_fraction(self.masks))

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out.update(selection=self.selection, update_frequency=self.update_frequency, regrowth=False,
                   count_rule=self.count_rule)
        return out


# --------------------------------------------------------------------------------------------------
# The SEVEN repository's re-implementations (strategies/pruner.py)

SEVEN_REPO_METHODS = ("platon", "movement", "soft_movement")


class SevenRepoDyn(WindowedDynPruner):
    """xiaojinying/SEVEN `--pruning_algo PLATON | movement | soft_movement` (ALGORITHMS.md 2.6(6)).

    Same loop as SEVEN-dyn: after each optimizer step inside [t_i, t_i + T - 1), k = step - t_i, score,
    then one global cut to r_k = d + (1 - d)(1 - (k + 1)/T)^3 among the entries not yet pruned (pruned
    scores are zeroed and pruned W is 0: masks persist, no regrowth).
      platon:        g = |W g|, m <- a1 m + (1 - a1) g, v <- a2 v + (1 - a2)|g - m|, score m * v (not
                     accumulated; alpha1/alpha2 play PLATON's beta1/beta2; deltaT = 1).
      movement:      score |W g| of the step (no learned scores, no sign).
      soft_movement: the same ranking with g the task-loss gradient, plus the loss term
                     r_k * sum_l ||sigmoid(g_l * W_l)||_1 / n  (n = all prunable weights) inside the window,
                     differentiated through g with create_graph=True (second order: roughly doubles the
                     cost of the backward pass).
    """

    variant = "seven_repo"

    def __init__(self, method: str, density: float, start: int, window: int, alpha1: float = 0.8,
                 alpha2: float = 0.9, fit_schedule: bool = False, count_rule: str = "floor_ties"):
        if method not in SEVEN_REPO_METHODS:
            raise ValueError(f"unknown SEVEN-repo method {method!r}")
        if start is None or window is None or int(start) < 0 or int(window) < 2:
            raise UserError(f"pruner={method} variant=seven_repo has no SEVEN window for this task: pass "
                            f"pruner.start=<t_i> and pruner.window=<T>")
        super().__init__(density, int(start), int(window), fit_schedule)
        self.name = method
        self.method = method
        self.second_order = method == "soft_movement"
        self.alpha1, self.alpha2 = float(alpha1), float(alpha2)
        self.count_rule = check_rule(count_rule)
        self.m: dict[str, torch.Tensor] = {}
        self.v: dict[str, torch.Tensor] = {}
        self._task_grads: dict[str, torch.Tensor] | None = None
        self._next_step = 0
        self.penalty_steps = 0

    def ratio_at(self, k: int) -> float:
        return seven_cubic(self.density, k, self.window)

    def prepare(self, ctx: PruneContext) -> None:
        self.masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in ctx.prunable.items()}
        self._plan(ctx)
        self._next_step = 0

    def extra_loss(self, ctx: PruneContext) -> torch.Tensor | None:
        step = self._next_step
        if self.method != "soft_movement" or not self.in_window(step):
            return None
        loss = getattr(ctx, "step_loss", None)
        if loss is None:
            raise RuntimeError("soft_movement variant=seven_repo needs the step's task loss: the trainer must set "
                               "PruneContext.step_loss before calling extra_loss")
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
        return self.ratio_at(step - self.start) * reg / numel

    @torch.no_grad()
    def after_optimizer_step(self, step: int, ctx: PruneContext) -> None:
        self._next_step = step + 1
        if not self.in_window(step):
            return
        k = step - self.start
        if self.method == "soft_movement" and self._task_grads is not None:
            grads = self._task_grads  # the code ranks with the create_graph gradient of the task loss
        else:
            grads = step_gradients(ctx.prunable)
        scores: dict[str, torch.Tensor] = {}
        for n, p in ctx.prunable.items():
            g = (p.detach() * grads[n]).abs_()
            if self.method == "platon":
                if n not in self.m:
                    self.m[n], self.v[n] = torch.zeros_like(g), torch.zeros_like(g)
                self.m[n].mul_(self.alpha1).add_(g, alpha=1.0 - self.alpha1)
                self.v[n].mul_(self.alpha2).add_((g - self.m[n]).abs_(), alpha=1.0 - self.alpha2)
                scores[n] = self.m[n] * self.v[n]
            else:
                scores[n] = g
        self._task_grads = None
        ratio = self.ratio_at(k)
        # SEVEN's code zeroes the importance of pruned entries before its topk/>= cut (count_rule floor_ties)
        self.masks = global_topk(scores, ratio, self.masks, self.count_rule)
        apply_masks_(ctx.prunable, self.masks)
        self._record(step, ratio)

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out.update(variant=self.variant, method=self.method, schedule="seven_cubic_window", regrowth=False)
        if self.method == "platon":
            out.update(alpha1=self.alpha1, alpha2=self.alpha2)
        if self.method == "soft_movement":
            out.update(penalty_steps=self.penalty_steps, second_order=True)
        return out


# --------------------------------------------------------------------------------------------------
# Builders (resolved config -> pruner), used by registry.py


def _variant(cfg: Config) -> str:
    variant = str(cfg.get("variant", "original"))
    if variant not in VARIANTS:
        raise UserError(f"pruner.variant={variant!r}: choose {' or '.join(VARIANTS)}")
    return variant


def _seven_repo(method: str, cfg: Config, density: float) -> SevenRepoDyn:
    return SevenRepoDyn(method, density, cfg.get("start"), cfg.get("window"), float(cfg.get("alpha1", 0.8)),
                        float(cfg.get("alpha2", 0.9)), bool(cfg.get("fit_schedule", False)),
                        resolve_count_rule(cfg.get("count_rule"), f"{method}/seven_repo"))


def build_platon(cfg: Config, density: float, seed: int) -> Pruner:
    if _variant(cfg) == "seven_repo":
        return _seven_repo("platon", cfg, density)
    return Platon(density, cfg.get("warmup_steps"), float(cfg["initial_warmup"]), float(cfg["final_warmup"]),
                  float(cfg["beta1"]), float(cfg["beta2"]), int(cfg["deltaT"]), str(cfg.get("prunable_set", "suite")),
                  bool(cfg.get("fit_schedule", False)), float(cfg.get("initial_ratio", 1.0)),
                  resolve_count_rule(cfg.get("count_rule"), "platon"))


def build_gmp(cfg: Config, density: float, seed: int) -> Pruner:
    if _variant(cfg) != "original":
        raise UserError("pruner=gmp has no seven_repo variant (the SEVEN repo has no magnitude baseline)")
    return Gmp(density, cfg.get("warmup_steps"), float(cfg["initial_warmup"]), float(cfg["final_warmup"]),
               str(cfg.get("selection", "global")), int(cfg.get("update_frequency", 1)),
               bool(cfg.get("fit_schedule", False)), resolve_count_rule(cfg.get("count_rule"), "gmp"))


def build_movement(cfg: Config, density: float, seed: int) -> Pruner:
    if _variant(cfg) == "seven_repo":
        return _seven_repo("movement", cfg, density)
    from seven_bench.pruning.movement import Movement

    return Movement(density, cfg.get("warmup_steps"), float(cfg["initial_warmup"]), float(cfg["final_warmup"]),
                    selection=str(cfg.get("selection", "layer")),
                    scores_lr=float(cfg["mask_scores_learning_rate"]), mask_init=float(cfg.get("mask_scale", 0.0)),
                    global_topk_frequency=int(cfg.get("global_topk_frequency", 25)),
                    count_rule=resolve_count_rule(cfg.get("count_rule"), "movement"),
                    fit_schedule=bool(cfg.get("fit_schedule", False)))


def build_soft_movement(cfg: Config, density: float, seed: int) -> Pruner:
    if _variant(cfg) == "seven_repo":
        return _seven_repo("soft_movement", cfg, density)
    from seven_bench.pruning.movement import SoftMovement

    if cfg.get("count_rule") not in (None, "original"):
        raise UserError("pruner=soft_movement keeps sigmoid(S) > tau: no count rule applies (sparsity is indirect); "
                        "leave count_rule=original")
    return SoftMovement(density, cfg.get("warmup_steps"), float(cfg["initial_warmup"]), float(cfg["final_warmup"]),
                        final_threshold=float(cfg["final_threshold"]), final_lambda=float(cfg["final_lambda"]),
                        initial_threshold=float(cfg.get("initial_threshold", 0.0)),
                        scores_lr=float(cfg["mask_scores_learning_rate"]), mask_init=float(cfg.get("mask_scale", 0.0)),
                        fit_schedule=bool(cfg.get("fit_schedule", False)))


__all__ = ["CubicDynPruner", "CubicPlan", "Gmp", "Platon", "SevenRepoDyn", "build_gmp", "build_movement",
           "build_platon", "build_soft_movement", "fit_warmups", "platon_param_set"]
