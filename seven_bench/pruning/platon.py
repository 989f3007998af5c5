"""PLATON (Zhang et al., ICML 2022) as QingruZhang/PLATON runs it on GLUE (`Pruner.py`,
`GLUE/mt_dnn/prune_model.py`, `GLUE/train.py`; ALGORITHMS.md 4.8): a `DynPruner` with PLATON's averaged
sensitivity as criterion, `PlatonTiming` as plan, one global cut, and regrowth."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from seven_bench.errors import UserError
from seven_bench.pruning.base import PruneContext, Pruner, kept_fraction
from seven_bench.pruning.configured import from_config
from seven_bench.pruning.dyn import DynPruner
from seven_bench.pruning.plans import PlatonTiming
from seven_bench.pruning.selection import resolve_count_rule
from seven_bench.pruning.seven_repo import build_seven_repo, variant

Tensors = dict[str, torch.Tensor]

# PLATON's own prunable set (Pruner.py `mask_param_name`): weights AND biases of these modules; no pooler.
PLATON_PARAM_NAMES = ("attention.self", "attention.output.dense", "output.dense", "intermediate.dense")


def platon_param_set(model: nn.Module) -> dict[str, nn.Parameter]:
    """PLATON's prunable set: every trainable parameter whose name contains one of PLATON_PARAM_NAMES."""
    return {
        n: p for n, p in model.named_parameters() if p.requires_grad and any(key in n for key in PLATON_PARAM_NAMES)
    }


class PlatonSensitivity:
    """Ibar (EMA of the window-averaged |W g|) and Ubar (EMA of its uncertainty), updated every step:

      local = t % deltaT
      local == 0: Ibar <- b1 Ibar + (1 - b1) ipt;  Ubar <- b2 Ubar + (1 - b2) |ipt - Ibar|  (new Ibar);
                  ipt <- |W g|                       (a new window starts)
      else:       ipt <- (ipt * local + |W g|) / (local + 1)   (running mean over the window)

    Score Ibar * Ubar (beta2 = 1: Ibar; beta2 = 2: Ibar * sqrt(running mean of (ipt - Ibar)^2); beta2 = 0:
    Ibar * |ipt - Ibar|)."""

    signal = "grad"

    def __init__(self, beta1: float, beta2: float, delta_t: int) -> None:
        self.beta1, self.beta2, self.delta_t = float(beta1), float(beta2), int(delta_t)
        self.ipt: Tensors = {}
        self.exp_avg_ipt: Tensors = {}
        self.exp_avg_unc: Tensors = {}

    def update(self, t: int, weights: Tensors, signal: Tensors | None) -> None:
        assert signal is not None
        local, update_step = t % self.delta_t, t // self.delta_t
        for n, w in weights.items():
            if n not in self.ipt:
                self.ipt[n], self.exp_avg_ipt[n], self.exp_avg_unc[n] = (
                    torch.zeros_like(w, dtype=torch.float32) for _ in range(3)
                )
            sens = (w.float() * signal[n].float()).abs_()
            if local == 0:
                self.exp_avg_ipt[n].mul_(self.beta1).add_(self.ipt[n], alpha=1.0 - self.beta1)
                if 0.0 < self.beta2 < 1.0:
                    self.exp_avg_unc[n].mul_(self.beta2).add_(
                        (self.ipt[n] - self.exp_avg_ipt[n]).abs_(), alpha=1.0 - self.beta2
                    )
                elif self.beta2 == 2.0:
                    self.exp_avg_unc[n].mul_(update_step).add_((self.ipt[n] - self.exp_avg_ipt[n]).pow_(2)).div_(
                        update_step + 1
                    )
                self.ipt[n] = sens
            else:
                self.ipt[n].mul_(local).add_(sens).div_(local + 1)

    def scores(self) -> Tensors:
        if 0.0 < self.beta2 < 1.0:
            return {n: self.exp_avg_ipt[n] * self.exp_avg_unc[n] for n in self.ipt}
        if self.beta2 == 1.0:
            return dict(self.exp_avg_ipt)
        if self.beta2 == 2.0:
            return {n: self.exp_avg_ipt[n] * self.exp_avg_unc[n].sqrt() for n in self.ipt}
        return {n: self.exp_avg_ipt[n] * (self.ipt[n] - self.exp_avg_ipt[n]).abs() for n in self.ipt}

    def forget(self, masks: Tensors) -> None:
        """PLATON keeps no mask: what it learned about zeroed weights stays (they may regrow)."""


class Platon(DynPruner):
    """After every optimizer step (t = step + 1) the sensitivity is updated; at the plan's cut steps one
    global cut of its score zeroes weights like `p.data.masked_fill_(S < thr, 0)`. There is no persistent
    mask: `masks` is set only on cut steps (the trainer re-applies it right away, which is the original's
    zeroing) and None in between, so zeroed weights keep training and may be selected again.

    The cut is the original's (`count_rule: original` = `kthvalue(int(n (1 - r)))` then `masked_fill(S < thr)`,
    one or two more than round(r n)); `count_rule: exact` keeps exactly round(r n)."""

    def __init__(
        self,
        density: float,
        warmup_steps: int,
        initial_warmup: float,
        final_warmup: float,
        beta1: float,
        beta2: float,
        delta_t: int,
        prunable_set: str = "suite",
        fit_schedule: bool = False,
        initial_ratio: float = 1.0,
        count_rule: str = "kthvalue_ties",
    ):
        if prunable_set not in ("suite", "platon"):
            raise UserError(
                f"pruner.prunable_set={prunable_set!r}: choose suite (the benchmark's set) or platon "
                f"(PLATON's own: {', '.join(PLATON_PARAM_NAMES)} weights and biases)"
            )
        plan = PlatonTiming(warmup_steps, initial_warmup, final_warmup, initial_ratio, density, delta_t, fit_schedule)
        super().__init__(
            "platon",
            density,
            plan,
            PlatonSensitivity(beta1, beta2, delta_t),
            count_rule=count_rule,
            regrow=True,
            target_set=self._platon_set if prunable_set == "platon" else None,
        )
        self.prunable_set = prunable_set

    @staticmethod
    def _platon_set(ctx: PruneContext) -> dict[str, nn.Parameter]:
        targets = platon_param_set(ctx.model)
        if not targets:
            raise UserError(
                "pruner.prunable_set=platon matches no parameter of this model (it names BERT "
                "modules: " + ", ".join(PLATON_PARAM_NAMES) + "): use prunable_set=suite"
            )
        return targets

    # the criterion's state under the names PLATON's code uses
    ipt = property(lambda self: self.criterion.ipt)
    exp_avg_ipt = property(lambda self: self.criterion.exp_avg_ipt)
    exp_avg_unc = property(lambda self: self.criterion.exp_avg_unc)
    beta1 = property(lambda self: self.criterion.beta1)
    beta2 = property(lambda self: self.criterion.beta2)
    delta_t = property(lambda self: self.criterion.delta_t)

    def scores(self) -> Tensors:
        return self.criterion.scores()

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        own_set: dict[str, Any] = {
            "tensors": len(self.targets),
            "weights": int(sum(p.numel() for p in self.targets.values())),
        }
        if self.own_masks is not None:
            own_set["achieved_sparsity"] = 1.0 - kept_fraction(self.own_masks)
        out.update(
            beta1=self.beta1,
            beta2=self.beta2,
            delta_t=self.delta_t,
            prunable_set=self.prunable_set,
            own_set=own_set,
            mask_updates=self.mask_updates,
            last_mask_step=self.last_mask_step,
            step_counter="t = step + 1 (MT-DNN updates)",
        )
        warnings = list(out["warnings"])
        plan = self.plan.plan  # type: ignore[attr-defined]
        if plan is not None and self.last_mask_step is None:
            warnings.append("platon: the schedule never recomputed a mask within the cell: nothing was pruned")
        elif plan is not None and self.last_mask_step != plan.total - 1:
            warnings.append(
                f"platon: the last mask recomputation was at step {self.last_mask_step} of {plan.total}: weights "
                f"zeroed then kept training (PLATON has no persistent mask), so the achieved sparsity is counted "
                f"from exact zeros"
            )
        if self.prunable_set == "platon":
            warnings.append(
                "platon: prunable_set=platon prunes PLATON's own set (weights and biases, no pooler); "
                "record.sparsity is over the suite's set, pruner.own_set.achieved_sparsity over PLATON's"
            )
        out["warnings"] = warnings
        return out


def build_platon(cfg: Mapping[str, Any], density: float, seed: int) -> Pruner:
    if variant(cfg) == "seven_repo":
        return build_seven_repo("platon", cfg, density)
    return from_config(Platon, cfg, density, count_rule=resolve_count_rule(cfg["count_rule"], "platon"))
