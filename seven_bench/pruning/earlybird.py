"""EarlyBird tickets, unstructured (ALGORITHMS.md 7.2): during dense fine-tuning, every Δ steps take the
global |W| mask at the target density; keep the last `keep` (5) masks; the ticket is drawn at the first check
where the newest mask lies within ε (0.1) normalised Hamming distance of each of the 4 older ones. Then the
ticket is fine-tuned by the cell's normal fine-tune with the paper's recipe.

Read from Early-Bird-Tickets `main.py` (class ``EarlyBird``): a mask is taken at the start of each epoch
*before* training it (epoch 0 = the initial weights), pushed into a FIFO of 5; the distance of the newest mask
to each older one is the fraction of differing entries; the EB point is reached when all 4 are <= 0.1. The
original masks BN scaling factors (channels); the unstructured version that SEVEN and ISP print masks the
prunable weights by global |W|, at Δ = 0.1 epoch with a 1-epoch search budget (7.2: Δ = 1 epoch is useless at
3 epochs).

Where the ticket starts its fine-tune (`weights`):

* ``pretrained`` (default): the model state from before the search, as EarlyBERT retrains its ticket from
  ``checkpoint-0``: the pretrained encoder with the cell's initial task head (the same head a dense fine-tune
  of this cell starts from; CLIP's zero-shot head is frozen anyway).
* ``trained``: the EB weights as the search left them, as You et al. continue training the EB checkpoint
  (here with a fresh optimizer and the recipe's full schedule, not the original's remaining epochs).

The search is the start of a dense fine-tune: it runs `seven_bench.train.run_steps` with the cell's recipe and
a learning-rate schedule spanning the fine-tune's length (max of the cell's steps and the search budget), so
its rate at step t is the dense fine-tune's. No ticket within the budget: the record says so and the last mask
(taken at the budget's end) is used. Cost = search steps + the fine-tune."""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from seven_bench.errors import UserError
from seven_bench.pruning.base import Masks, PruneContext, Pruner
from seven_bench.pruning.selection import check_rule, global_topk, resolve_count_rule
from seven_bench.train import run_steps

WEIGHTS = ("pretrained", "trained")


def flat_mask(masks: Masks) -> torch.Tensor:
    """Every tensor's mask as one flat bool vector (in the prunable set's order)."""
    return torch.cat([m.reshape(-1) for m in masks.values()])


def hamming(a: torch.Tensor, b: torch.Tensor) -> float:
    """Normalised Hamming distance of two flat masks: the fraction of entries where they differ
    (the original's ``1 - sum(mask_i == mask_j) / size``). Two masks of density d differ in at most
    2 min(d, 1 - d) of their entries."""
    return float(torch.count_nonzero(a != b)) / max(1, a.numel())


class MaskQueue:
    """The original's FIFO of the last `keep` masks and its stop rule.

    Example: with keep=3, eps=0.25 and masks m0, m1, m2 pushed in turn, `push(m2)` returns the distances of
    m2 to m0 and m1 (oldest first), and `emerged` is True when both are <= 0.25."""

    def __init__(self, keep: int = 5, eps: float = 0.1):
        self.keep, self.eps = keep, eps
        self.masks: list[torch.Tensor] = []

    def push(self, mask: torch.Tensor) -> list[float] | None:
        """Add the newest mask; once `keep` masks are held, its distances to the older ones (oldest first)."""
        self.masks.append(mask)
        if len(self.masks) > self.keep:
            self.masks.pop(0)
        if len(self.masks) < self.keep:
            return None
        return [hamming(mask, older) for older in self.masks[:-1]]

    def emerged(self, distances: list[float] | None) -> bool:
        return distances is not None and all(d <= self.eps for d in distances)


class _SearchOver(Exception):
    """Raised from `run_steps`'s step callback: the ticket is drawn or the search budget is spent."""


def _steps(epochs: float, steps: int, steps_per_epoch: int) -> int:
    """An amount of training in optimizer steps: `steps` when > 0, else `epochs` of the train loader (>= 1)."""
    return int(steps) if steps > 0 else max(1, int(round(epochs * max(1, steps_per_epoch))))


class EarlyBird(Pruner):
    name = "earlybird"
    timing = "pre"

    def __init__(
        self,
        density: float,
        interval_epochs: float = 0.1,
        interval_steps: int = 0,
        max_search_epochs: float = 1.0,
        max_search_steps: int = 0,
        keep: int = 5,
        epsilon: float = 0.1,
        weights: str = "pretrained",
        count_rule: str = "exact",
    ):
        super().__init__(density)
        if weights not in WEIGHTS:
            raise UserError(f"pruner.weights={weights!r}: choose one of {', '.join(WEIGHTS)}")
        if int(keep) < 2:
            raise UserError(f"pruner.keep={keep}: the stop rule compares the newest mask with older ones, keep >= 2")
        if not 0.0 <= float(epsilon) <= 1.0:
            raise UserError(f"pruner.epsilon={epsilon}: a normalised Hamming distance, in [0, 1]")
        for key, value in (("interval_epochs", interval_epochs), ("max_search_epochs", max_search_epochs)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise UserError(f"pruner.{key}={value}: a positive number of epochs")
        for key, value in (("interval_steps", interval_steps), ("max_search_steps", max_search_steps)):
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise UserError(f"pruner.{key}={value}: an integer >= 0 (0 = use the epochs value)")
        self.interval_epochs, self.interval_steps = float(interval_epochs), int(interval_steps)
        self.max_search_epochs, self.max_search_steps = float(max_search_epochs), int(max_search_steps)
        self.keep, self.epsilon, self.weights = int(keep), float(epsilon), weights
        self.count_rule = check_rule(count_rule)
        self.checks: list[dict[str, Any]] = []
        self.drawn_at: int | None = None
        self.search_steps = 0
        self.interval = self.budget = self.schedule_steps = 0

    def mask_of(self, ctx: PruneContext) -> Masks:
        """The global |W| mask of the current weights at the target density."""
        scores = {n: p.detach().abs() for n, p in ctx.prunable.items()}
        return global_topk(scores, self.density, None, self.count_rule)

    def check(self, ctx: PruneContext, queue: MaskQueue, step: int) -> bool:
        """Take the mask after `step` training steps, record its distances, and say whether the EB emerged."""
        self.masks = self.mask_of(ctx)
        distances = queue.push(flat_mask(self.masks))
        self.checks.append({"step": step, "distances": None if distances is None else [round(d, 6) for d in distances]})
        return queue.emerged(distances)

    def prepare(self, ctx: PruneContext) -> None:
        start = {k: v.detach().to("cpu", copy=True) for k, v in ctx.model.state_dict().items()}
        self.interval = _steps(self.interval_epochs, self.interval_steps, ctx.steps_per_epoch)
        self.budget = _steps(self.max_search_epochs, self.max_search_steps, ctx.steps_per_epoch)
        self.schedule_steps = max(ctx.total_steps, self.budget)
        queue = MaskQueue(self.keep, self.epsilon)
        self.check(ctx, queue, 0)  # epoch 0 = the initial weights, as the original

        def on_step(step: int, loss: torch.Tensor) -> None:
            done = step + 1
            self.search_steps = done
            if done % self.interval == 0 or done == self.budget:
                if self.check(ctx, queue, done):
                    self.drawn_at = done
                    raise _SearchOver
            if done >= self.budget:
                raise _SearchOver

        try:
            run_steps(ctx, self.schedule_steps, ctx.settings, masks=None, on_step=on_step, desc="earlybird search")
        except _SearchOver:
            pass
        ctx.model.zero_grad(set_to_none=True)
        if self.weights == "pretrained":
            ctx.model.load_state_dict(start)

    def steps_before_finetune(self) -> int:
        """The search up to the step the ticket was drawn (or the budget, if none was)."""
        return self.search_steps

    def summary(self) -> dict[str, Any]:
        drawn = self.drawn_at is not None
        out: dict[str, Any] = {
            "weights": self.weights,
            "interval_steps": self.interval,
            "max_search_steps": self.budget,
            "schedule_steps": self.schedule_steps,
            "keep": self.keep,
            "epsilon": self.epsilon,
            # the largest distance two masks of this density can have: read epsilon against it
            "max_distance": 2 * min(self.density, 1 - self.density),
            "count_rule": self.count_rule,
            "drawn": drawn,
            "drawn_at_step": self.drawn_at,
            "search_steps": self.search_steps,
            "checks": self.checks,
        }
        if not drawn:
            out["warnings"] = [
                f"earlybird: no ticket within the search budget of {self.budget} steps (the newest mask never came "
                f"within epsilon={self.epsilon} of the {self.keep - 1} before it): the last mask, taken at step "
                f"{self.search_steps}, was used"
            ]
        return out


def build_earlybird(cfg: Mapping[str, Any], density: float, seed: int) -> EarlyBird:
    return EarlyBird(
        density,
        interval_epochs=cfg["interval_epochs"],
        interval_steps=cfg["interval_steps"],
        max_search_epochs=cfg["max_search_epochs"],
        max_search_steps=cfg["max_search_steps"],
        keep=cfg["keep"],
        epsilon=cfg["epsilon"],
        weights=cfg["weights"],
        count_rule=resolve_count_rule(cfg["count_rule"], "earlybird"),
    )
