"""ISP, Instant Soup Pruning (Jaiswal et al., ICML 2023; ALGORITHMS.md 7.3, read from instant_soup
`clip_assets/code/isp_all.py`, `trainer.py`, `pruner.py`).

The original's loop, round i = 0, 1, ...:

1. train the main model for "0.5 epoch" (`main_fraction`; the original keeps each batch of an epoch with
   probability 0.5, here the next round(0.5 x steps per epoch) batches of the stream);
2. stop when target - current sparsity < 5 points (`stop_gap`);
3. else 5 weak copies (`weak_copies`) each start from the main weights and mask, train 0.1 epoch
   (`weak_fraction`) on their own batches, then prune another 10% of their remaining weights by global |W|
   (`weak_prune`; torch's `L1Unstructured` prunes round(0.1 x remaining));
4. the weak masks are merged (`merge`: ``union`` = kept by any copy, the original's ``merge_dicts``;
   ``intersection`` = kept by all, its ``all_dicts``; its ``intersect_dicts`` reads only 4 of the 5) and the
   merged mask is applied to the main model.

After the loop the gap is pruned one-shot by the main model's |W| (exactly round(d n) weights kept) and the
main model is trained on.

**How it maps onto the suite: a pre pruner.** `prepare` runs the loop and the one-shot cut; the cell's normal
fine-tune then trains the pruned main model (its ISP weights, not rewound) with the paper's recipe. This is
7.3's BERT spec ("same loop; budget E = 3 epochs final fine-tune after the mask"): ISP has no BERT code, and
Table II fine-tunes every pre-pruned row with the same recipe, so the loop is a search cost beside the fine-tune,
as LTH's rounds are. A dyn pruner inside that fine-tune could not reach 60% in 3 epochs of 0.5-epoch rounds (at
most 10 points a round). The one difference to the CLIP original: the final phase starts a fresh optimizer and
the recipe's schedule over its epochs, where the original continues its main trainer for epochs - int(i/2)
epochs. Within the loop the main model keeps one optimizer and schedule across rounds, as the original's
``main_trainer``; the schedule is the cell's recipe spanning the loop's budget (`max_rounds` main phases) plus
the fine-tune, as the original's ``t_total`` spans every epoch of its run.

**Weak copies' learning rate** (`weak_lr`): ``warmup`` (the original's ``set_state_dict``): a fresh optimizer
at the main model's current rate with a new linear schedule, warm-up 500 steps over 1000 (`weak_warmup_steps`,
`weak_schedule_steps`), so the first weak step has rate 0 and the copies barely move; ``main``: each copy
continues the main model's optimizer state and schedule (the original's commented-out alternative).

The loop is bounded by `max_rounds` (the original by its epoch count); a cut that overshoots the target (a
round may prune up to 10 points past a gap of 5) is kept, as in the original, and warned about."""

from __future__ import annotations

import copy
import math
from typing import Any, Mapping

import torch
from torch import nn
from tqdm.auto import tqdm

from seven_bench.errors import UserError
from seven_bench.pruning.base import Masks, PruneContext, Pruner, apply_masks_
from seven_bench.pruning.selection import global_topk, keep_count
from seven_bench.train import build_optimizer, build_scheduler, train_step

MERGES = ("union", "intersection")
WEAK_LR = ("warmup", "main")


def kept(masks: Masks) -> int:
    return sum(int(torch.count_nonzero(m)) for m in masks.values())


def weak_keep(remaining: int, amount: float) -> int:
    """Weights a weak copy keeps of `remaining` after pruning `amount` of them (torch's round(amount x n))."""
    return remaining - round(amount * remaining)


def keep_largest(weights: dict[str, torch.Tensor], eligible: Masks, k: int) -> Masks:
    """Exactly the k largest |W| among the `eligible` entries (k <= their count): a global L1 cut of the
    remaining weights."""
    n = sum(w.numel() for w in weights.values())
    scores = {name: w.detach().abs() for name, w in weights.items()}
    return global_topk(scores, k / n, eligible, "exact")


def merge(masks: list[Masks], how: str = "union") -> Masks:
    """The weak masks merged: ``union`` keeps an entry any copy kept, ``intersection`` one every copy kept."""
    out: Masks = {}
    for name in masks[0]:
        stack = torch.stack([m[name] for m in masks])
        out[name] = stack.any(0) if how == "union" else stack.all(0)
    return out


class Stepper:
    """An optimizer and schedule that persist across calls, as the original's ``Trainer`` object: the main
    model trains a few steps per round and carries its Adam state and learning rate into the next round."""

    def __init__(self, model: nn.Module, settings: dict[str, Any], horizon: int):
        self.settings = settings
        self.optimizer = build_optimizer(model, [], settings)
        self.scheduler = build_scheduler(self.optimizer, settings, horizon)
        self.steps = 0

    @property
    def lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def train(self, ctx: PruneContext, n_steps: int, masks: Masks) -> None:
        holder = Pruner(1.0)  # no hooks: only its masks, re-applied after every step
        holder.masks = masks
        ctx.model.train()
        for _ in range(n_steps):
            train_step(
                ctx,
                holder,
                self.optimizer,
                self.scheduler,
                next(ctx.batches),
                self.steps,
                self.settings.get("max_grad_norm"),
            )
            self.steps += 1

    def state(self) -> tuple[dict[str, Any], dict[str, Any], int]:
        return copy.deepcopy(self.optimizer.state_dict()), copy.deepcopy(self.scheduler.state_dict()), self.steps

    def restore(self, state: tuple[dict[str, Any], dict[str, Any], int]) -> None:
        self.optimizer.load_state_dict(state[0])
        self.scheduler.load_state_dict(state[1])
        self.steps = state[2]


class InstantSoup(Pruner):
    name = "isp"
    timing = "pre"

    def __init__(
        self,
        density: float,
        main_fraction: float = 0.5,
        weak_fraction: float = 0.1,
        main_steps: int = 0,
        weak_steps: int = 0,
        weak_copies: int = 5,
        weak_prune: float = 0.1,
        stop_gap: float = 0.05,
        max_rounds: int = 30,
        merge: str = "union",
        weak_lr: str = "warmup",
        weak_warmup_steps: int = 500,
        weak_schedule_steps: int = 1000,
    ):
        super().__init__(density)
        if merge not in MERGES:
            raise UserError(f"pruner.merge={merge!r}: choose one of {', '.join(MERGES)}")
        if weak_lr not in WEAK_LR:
            raise UserError(f"pruner.weak_lr={weak_lr!r}: choose one of {', '.join(WEAK_LR)}")
        for key, value, low in (("main_fraction", main_fraction, 0.0), ("weak_fraction", weak_fraction, 0.0)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > low):
                raise UserError(f"pruner.{key}={value}: a positive fraction of an epoch")
        if not (isinstance(weak_prune, (int, float)) and 0.0 < weak_prune < 1.0):
            raise UserError(f"pruner.weak_prune={weak_prune}: the fraction of the remaining weights a weak copy prunes")
        if not (isinstance(stop_gap, (int, float)) and 0.0 <= stop_gap < 1.0):
            raise UserError(f"pruner.stop_gap={stop_gap}: a sparsity gap in [0, 1)")
        ints = {
            "main_steps": (main_steps, 0),
            "weak_steps": (weak_steps, 0),
            "weak_copies": (weak_copies, 1),
            "max_rounds": (max_rounds, 1),
            "weak_warmup_steps": (weak_warmup_steps, 0),
            "weak_schedule_steps": (weak_schedule_steps, 1),
        }
        for key, (value, low) in ints.items():
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
                raise UserError(f"pruner.{key}={value}: an integer >= {low}")
        self.main_fraction, self.weak_fraction = float(main_fraction), float(weak_fraction)
        self.main_steps, self.weak_steps = main_steps, weak_steps
        self.weak_copies, self.weak_prune, self.stop_gap = weak_copies, float(weak_prune), float(stop_gap)
        self.max_rounds, self.merge, self.weak_lr = max_rounds, merge, weak_lr
        self.weak_warmup_steps, self.weak_schedule_steps = weak_warmup_steps, weak_schedule_steps
        self.rounds: list[dict[str, Any]] = []
        self.stopped_by = ""
        self.one_shot: dict[str, Any] = {}
        self.search_steps = 0

    def _steps(self, steps: int, fraction: float, ctx: PruneContext) -> int:
        return steps if steps > 0 else max(1, int(round(fraction * max(1, ctx.steps_per_epoch))))

    def weak_mask(self, ctx: PruneContext, main: Stepper, masks: Masks, steps: int) -> Masks:
        """One weak copy: from the main model's weights and mask, train `steps`, prune `weak_prune` of what
        remains by |W|; the main model (weights, and optimizer under ``weak_lr=main``) is restored after."""
        weights = {k: v.detach().clone() for k, v in ctx.model.state_dict().items()}
        if self.weak_lr == "main":
            saved = main.state()
            main.train(ctx, steps, masks)
            main.restore(saved)
        else:
            settings = {
                **main.settings,
                "lr": main.lr,
                "lr_schedule": "linear",
                "warmup_steps": self.weak_warmup_steps,
            }
            Stepper(ctx.model, settings, self.weak_schedule_steps).train(ctx, steps, masks)
        mask = keep_largest(dict(ctx.prunable), masks, weak_keep(kept(masks), self.weak_prune))
        ctx.model.load_state_dict(weights)
        return mask

    def prepare(self, ctx: PruneContext) -> None:
        n = sum(p.numel() for p in ctx.prunable.values())
        target = 1.0 - self.density
        main_steps = self._steps(self.main_steps, self.main_fraction, ctx)
        weak_steps = self._steps(self.weak_steps, self.weak_fraction, ctx)
        main = Stepper(ctx.model, dict(ctx.settings), self.max_rounds * main_steps + ctx.total_steps)
        masks = {name: torch.ones_like(p, dtype=torch.bool) for name, p in ctx.prunable.items()}
        self.stopped_by = "max_rounds"
        bar = tqdm(desc="isp rounds", disable=not ctx.progress, dynamic_ncols=True, leave=False)
        for i in range(self.max_rounds):
            main.train(ctx, main_steps, masks)
            self.search_steps += main_steps
            current = 1.0 - kept(masks) / n
            bar.set_postfix(round=i, sparsity=f"{current:.3f}", target=f"{target:.3f}")
            if target - current < self.stop_gap:
                self.stopped_by = "gap"
                self.rounds.append({"round": i, "main_steps": main_steps, "sparsity": current})
                break
            lr = main.lr
            weak = [self.weak_mask(ctx, main, masks, weak_steps) for _ in range(self.weak_copies)]
            self.search_steps += self.weak_copies * weak_steps
            masks = merge(weak, self.merge)
            apply_masks_(ctx.prunable, masks)
            self.rounds.append(
                {
                    "round": i,
                    "main_steps": main_steps,
                    "sparsity": current,
                    "weak_steps": weak_steps,
                    "weak_lr_base": lr,
                    "weak_sparsity": [1.0 - kept(m) / n for m in weak],
                    "merged_sparsity": 1.0 - kept(masks) / n,
                }
            )
            bar.update(1)
        bar.close()
        before = 1.0 - kept(masks) / n
        goal = keep_count(self.density, n, "exact")
        if kept(masks) > goal:
            masks = keep_largest(dict(ctx.prunable), masks, goal)
        self.one_shot = {"from_sparsity": before, "to_sparsity": 1.0 - kept(masks) / n}
        self.masks = masks
        apply_masks_(ctx.prunable, masks)
        ctx.model.zero_grad(set_to_none=True)

    def steps_before_finetune(self) -> int:
        """The search's main steps and every weak copy's (each copy trains on its own batches)."""
        return self.search_steps

    def summary(self) -> dict[str, Any]:
        n_rounds = sum(1 for r in self.rounds if "merged_sparsity" in r)
        out: dict[str, Any] = {
            "merge": self.merge,
            "weak_lr": self.weak_lr,
            "weak_warmup_steps": self.weak_warmup_steps if self.weak_lr == "warmup" else None,
            "weak_schedule_steps": self.weak_schedule_steps if self.weak_lr == "warmup" else None,
            "weak_copies": self.weak_copies,
            "weak_prune": self.weak_prune,
            "stop_gap": self.stop_gap,
            "pruning_rounds": n_rounds,
            "stopped_by": self.stopped_by,
            "rounds": self.rounds,
            "one_shot": self.one_shot,
            "search_steps": self.search_steps,
            "final_phase": "the cell's fine-tune from the ISP weights, fresh optimizer (ALGORITHMS.md 7.3 BERT spec)",
        }
        warnings = []
        if self.stopped_by == "max_rounds":
            warnings.append(
                f"isp: the loop ended at max_rounds={self.max_rounds} before the gap fell under {self.stop_gap:g}: "
                f"the one-shot cut pruned from {self.one_shot.get('from_sparsity', 0):.4f} to the target"
            )
        reached = self.one_shot.get("to_sparsity", 0.0)
        if reached > 1.0 - self.density + 1e-6:
            warnings.append(
                f"isp: a round overshot the target ({reached:.4f} > {1.0 - self.density:g}); kept, as in the original"
            )
        if warnings:
            out["warnings"] = warnings
        return out


def build_isp(cfg: Mapping[str, Any], density: float, seed: int) -> InstantSoup:
    keys = (
        "main_fraction",
        "weak_fraction",
        "main_steps",
        "weak_steps",
        "weak_copies",
        "weak_prune",
        "stop_gap",
        "max_rounds",
        "merge",
        "weak_lr",
        "weak_warmup_steps",
        "weak_schedule_steps",
    )
    return InstantSoup(density, **{key: cfg[key] for key in keys})
