"""Timing `pre`: the mask is decided before fine-tuning, from N scoring steps with no weight updates
(SEVEN-pre Algorithm 1, iterative SNIP, FORCE; one-shot methods are the N = 1 case)."""

from __future__ import annotations

import functools
from typing import Any, Iterator

import torch
from tqdm.auto import tqdm

from seven_bench.errors import UserError
from seven_bench.pruning.base import PruneContext, Pruner, batch_targets, kept_fraction
from seven_bench.pruning.ckernels import mask_mul_
from seven_bench.pruning.criteria import Criterion, describe
from seven_bench.pruning.schedules import PreSchedule
from seven_bench.pruning.selection import (
    SCOPES,
    SELECTIONS,
    STRUCTURED_SCOPES,
    check_nm,
    check_rule,
    check_selection,
    nm_groups_ok,
    nm_topk,
)
from seven_bench.pruning.structures import find_blocks, removable_fraction, structure_summary


def balanced_rows(
    batches: Iterator[dict[str, Any]], per_class: int, num_labels: int, max_batches: int = 200
) -> list[dict[str, Any]]:
    """Sub-batches holding `per_class` examples of every class (GraSP's samples_per_class). For
    regression and answer spans (no classes), per_class * 10 examples in stream order."""
    counts = [0] * max(num_labels, 1)
    need_total = per_class * (num_labels if num_labels > 1 else 10)
    picked: list[dict[str, Any]] = []
    taken = 0
    for _ in range(max_batches):
        batch = next(batches)
        labels = batch_targets(batch)
        classes = num_labels > 1 and labels.dim() == 1
        if not classes:
            need_total = per_class * 10
        rows = []
        for i, label in enumerate(labels.tolist()):
            cls = int(label) if classes else 0
            if classes and counts[cls] >= per_class:
                continue
            if taken + len(rows) >= need_total:
                break
            counts[cls] += 1
            rows.append(i)
        if rows:
            index = torch.tensor(rows, device=labels.device)
            picked.append({k: v.index_select(0, index) if torch.is_tensor(v) else v for k, v in batch.items()})
            taken += len(rows)
        if taken >= need_total:
            break
    return picked


class PrePruner(Pruner):
    timing = "pre"

    def __init__(
        self,
        name: str,
        density: float,
        criterion: Criterion,
        schedule: PreSchedule,
        steps: int,
        batches_per_step: int = 1,
        selection: str = "global",
        resurrection: bool = False,
        grad_mode: str = "train",
        samples_per_class: int | None = None,
        temperature: float = 1.0,
        count_rule: str = "exact",
        nm: tuple[int, int] | None = None,
    ):
        super().__init__(density)
        self.name = name
        self.criterion = criterion
        self.schedule = schedule
        self.steps = steps
        self.batches_per_step = batches_per_step
        self.selection = check_selection(selection, (*SCOPES, *STRUCTURED_SCOPES))
        self.select = SELECTIONS[selection]
        self.blocks: list | None = None
        self.nm = check_nm(*(nm or (2, 4)), density) if selection == "nm" else None
        if self.nm:
            self.select = functools.partial(nm_topk, n=self.nm[0], m=self.nm[1])
        self.count_rule = check_rule(count_rule)
        self.resurrection = resurrection
        self.grad_mode = grad_mode
        self.samples_per_class = samples_per_class
        self.temperature = temperature
        self.trajectory: list[tuple[int, float, float]] = []
        self.dense: dict[str, torch.Tensor] | None = None
        self._was_training = True

    def _signal(self, ctx: PruneContext) -> dict[str, torch.Tensor] | None:
        if self.criterion.signal == "none":
            return None
        if self.samples_per_class:
            batches = balanced_rows(ctx.batches, self.samples_per_class, ctx.num_labels)
        else:
            batches = [next(ctx.batches) for _ in range(self.batches_per_step)]
        return ctx.signal(self.criterion.signal, batches, temperature=self.temperature)

    def prepare(self, ctx: PruneContext) -> None:
        self.start(ctx)
        for t in tqdm(
            range(1, self.steps + 1),
            desc=f"{self.name} scoring",
            disable=not ctx.progress or self.steps < 2,
            dynamic_ncols=True,
        ):
            self.step(ctx, t)
        self.finish(ctx)

    def start(self, ctx: PruneContext) -> None:
        self.masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in ctx.prunable.items()}
        # Resurrection (FORCE) scores the dense pretrained weights and restarts each step from them;
        # without it, pruned weights are zero and never chosen again, so no copy is needed.
        self.dense = {n: p.detach().clone() for n, p in ctx.prunable.items()} if self.resurrection else None
        self._was_training = ctx.model.training
        ctx.model.train(self.grad_mode == "train")
        if self.selection in STRUCTURED_SCOPES:  # the structures come from the model: bind them now
            self.blocks = find_blocks(ctx.model, ctx.prunable)
            reach = removable_fraction(
                self.blocks, STRUCTURED_SCOPES[self.selection], {n: p.shape for n, p in ctx.prunable.items()}
            )
            if 1.0 - self.density > reach + 1e-9:
                raise UserError(
                    f"pruner.selection={self.selection} can remove at most {reach:.4f} of this model's prunable "
                    f"weights; sparsity={1.0 - self.density:g} asks for more: lower it or use selection=structured"
                )
            self.select = functools.partial(SELECTIONS[self.selection], blocks=self.blocks)

    def step(self, ctx: PruneContext, t: int) -> None:
        """Scoring step t of `steps`: signal at W*M, criterion update, cut to the schedule's keep ratio."""
        assert self.masks is not None
        signal = self._signal(ctx)
        weights = self.dense if self.dense is not None else {n: p.detach() for n, p in ctx.prunable.items()}
        self.criterion.update(t, weights, signal)
        del signal
        ratio = self.schedule(self.density, t, self.steps)
        self.masks = self.select(
            self.criterion.scores(), ratio, None if self.resurrection else self.masks, count_rule=self.count_rule
        )
        if not self.resurrection:
            self.criterion.forget(self.masks)
        with torch.no_grad():
            for name, param in ctx.prunable.items():
                if self.dense is not None:
                    param.copy_(self.dense[name] * self.masks[name])
                else:
                    mask_mul_(param, self.masks[name])
        self.trajectory.append((t, ratio, kept_fraction(self.masks)))

    def finish(self, ctx: PruneContext) -> None:
        self.dense = None
        ctx.model.zero_grad(set_to_none=True)
        ctx.model.train(self._was_training)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.nm and self.masks is not None:
            out = {
                "nm": f"{self.nm[0]}:{self.nm[1]}",
                "nm_valid": all(nm_groups_ok(mask, *self.nm) for mask in self.masks.values()),
            }
        if self.blocks is not None and self.masks is not None:
            out = structure_summary(self.blocks, self.masks)
        return {
            **describe(self.criterion),
            **out,
            "scoring_steps": self.steps,
            "resurrection": self.resurrection,
            "selection": self.selection,
            "count_rule": self.count_rule,
            "trajectory": [{"step": s, "target_keep": r, "achieved_keep": k} for s, r, k in self.trajectory],
        }
