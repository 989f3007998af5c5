"""Lottery Pools (Yin et al., AAAI 2023; `luuyin/Lottery-pools` `CIFAR/Lottery_pools.py` L741-881), on the
IMP path of pruning/lth.py (ALGORITHMS.md 7.4).

Ticket i is the path's mask of level i with the weights trained under it (round i + 1's trained weights).
Greedy search: current = ticket i; for each candidate ticket c in the order i, i-1, i+1, i-2, ... (the
first `search_num`), and each alpha of the grid, w = alpha * w_c + (1 - alpha) * w_current over every trained
weight, re-pruned by global |w| to ticket i's kept count; the candidate's best alpha becomes the new current
only if it beats the current score. Scores are the task's metric on a held-out slice of the training set
(`holdout`, 10% by default, kept out of the path's and the fine-tune's training), never the dev set the
tables report; the original starts from ticket i's *test* accuracy and compares on val (a leak not copied).
Transformers have no batch norm, so the original's `update_bn` has nothing to do.

The interpolated ticket is reported as it is (no fine-tune: the cell's record has one evaluation, epoch 0);
`pruner.finetune=true` fine-tunes its mask from the pretrained weights with the cell's recipe instead.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch

from seven_bench.errors import UserError
from seven_bench.pruning.base import Masks, PruneContext, Pruner
from seven_bench.pruning.configured import from_config
from seven_bench.pruning.lth import LotteryTicket, State, kept_rng
from seven_bench.pruning.selection import global_topk

ALPHAS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)  # `interpolation_value_list`


def candidate_order(ticket: int, levels: int, search_num: int) -> list[int]:
    """Tickets in the original's order around `ticket` (itself first, then i-1, i+1, i-2, ...), within
    levels 0..levels-1, the first `search_num` of them."""
    order = [ticket]
    for distance in range(1, levels):
        order += [lv for lv in (ticket - distance, ticket + distance) if 0 <= lv < levels]
    return order[:search_num]


def interpolate(current: State, candidate: State, alpha: float) -> State:
    return {n: alpha * candidate[n] + (1.0 - alpha) * current[n] for n in current}


def reprune(weights: State, prunable: list[str], keep: int) -> tuple[State, Masks]:
    """`weights` with the prunable tensors cut to the `keep` largest |w| globally (exactly), and that mask."""
    total = sum(weights[n].numel() for n in prunable)
    mask = global_topk({n: weights[n].abs() for n in prunable}, keep / total, count_rule="exact")
    return {n: w * mask[n] if n in mask else w for n, w in weights.items()}, mask


def pool_search(
    ticket: State,
    ticket_mask: Masks,
    candidates: Iterable[tuple[int, State]],
    alphas: tuple[float, ...],
    score: Callable[[State, Masks], float],
) -> tuple[State, Masks, list[dict[str, Any]]]:
    """The greedy search (module docstring). Returns the final weights, their mask and one entry per
    candidate: its level, best alpha and score, and whether it was accepted."""
    prunable = list(ticket_mask)
    keep = sum(int(torch.count_nonzero(m)) for m in ticket_mask.values())
    current, current_mask = ticket, ticket_mask
    best = score(current, current_mask)
    history: list[dict[str, Any]] = [{"level": None, "alpha": None, "score": best, "accepted": True}]
    for level, weights in candidates:
        found: tuple[float, float, State, Masks] | None = None
        for alpha in alphas:
            mixed, mask = reprune(interpolate(current, weights, alpha), prunable, keep)
            value = score(mixed, mask)
            if found is None or value > found[0]:
                found = (value, alpha, mixed, mask)
        assert found is not None
        accepted = found[0] > best
        if accepted:
            best, current, current_mask = found[0], found[2], found[3]
        history.append({"level": level, "alpha": found[1], "score": found[0], "accepted": accepted})
    return current, current_mask, history


class LotteryPool(Pruner):
    """`lottery_pool`: the interpolated ticket at the cell's sparsity, from the IMP path's tickets."""

    timing = "pre"

    def __init__(
        self,
        density: float,
        path_rounds: int = 10,
        search_num: int = 19,
        alphas: tuple[float, ...] = ALPHAS,
        holdout: float = 0.1,
        finetune: bool = False,
        rate: float = 0.1,
        round_steps: int = 0,
        rewind_fraction: float = 0.0,
        rewind_steps: int = 0,
        lr_span: str = "all_rounds",
    ):
        super().__init__(density)
        self.name = "lottery_pool"
        self.lth = LotteryTicket(
            "lottery_pool", density, rate, round_steps, rewind_fraction, rewind_steps, lr_span, "pretrained"
        )
        if self.lth.level + 1 > int(path_rounds):
            raise UserError(
                f"pruner.path_rounds={path_rounds}: the ticket at this sparsity needs round {self.lth.level + 1} "
                f"of the IMP path (its trained weights): pass pruner.path_rounds>={self.lth.level + 1}"
            )
        if int(search_num) < 1 or not alphas or not all(0.0 < float(a) < 1.0 for a in alphas):
            raise UserError("pruner.search_num must be >= 1 and pruner.alphas a non-empty list in (0, 1)")
        if not 0.0 < float(holdout) < 1.0:
            raise UserError(f"pruner.holdout={holdout}: the share of the training set held out, in (0, 1)")
        self.path_rounds, self.search_num = int(path_rounds), int(search_num)
        self.alphas = tuple(float(a) for a in alphas)
        self.holdout_fraction = float(holdout)
        self.fine_tune = bool(finetune)
        self.history: list[dict[str, Any]] = []

    def prepare(self, ctx: PruneContext) -> None:
        if ctx.holdout_score is None:
            raise UserError("lottery_pool needs a held-out slice of the training set (run it through run_cell)")
        model = ctx.model
        initial = {n: t.detach().clone() for n, t in model.state_dict().items()}
        path = self.lth.path = self.lth.open_path(ctx, initial)
        level = self.lth.level
        with kept_rng():
            path.ensure(self.path_rounds)
            mask = path.mask(level) or {n: torch.ones_like(p, dtype=torch.bool) for n, p in ctx.prunable.items()}

            def on_device(state: State) -> State:
                return {n: t.to(ctx.device) for n, t in state.items()}

            def score(weights: State, masks: Masks) -> float:
                model.load_state_dict(weights, strict=False)
                return float(ctx.holdout_score())  # type: ignore[misc]

            order = candidate_order(level, self.path_rounds, self.search_num)
            candidates = ((lv, on_device(path.weights(lv + 1))) for lv in order)  # one in memory at a time
            weights, self.masks, self.history = pool_search(
                on_device(path.weights(level + 1)), mask, candidates, self.alphas, score
            )
            model.load_state_dict(initial if self.fine_tune else {**initial, **weights})

    def steps_before_finetune(self) -> int:
        """The whole path the pool searches: its candidates are the trained weights of rounds up to path_rounds."""
        assert self.lth.path is not None, "steps_before_finetune() before prepare()"
        return self.path_rounds * self.lth.path.round_steps

    def summary(self) -> dict[str, Any]:
        base = self.lth.summary()
        return {
            **base,
            "method": "Lottery Pools (Lottery_pools.py greedy interpolation) on the IMP path of lth",
            "ticket_level": self.lth.level,
            "path_rounds": self.path_rounds,
            "search_num": self.search_num,
            "alphas": list(self.alphas),
            "holdout_fraction": self.holdout_fraction,
            "search": self.history,
            "reported": "the mask fine-tuned from the pretrained weights" if self.fine_tune else "the ticket as is",
        }


def build_lottery_pool(cfg: Any, density: float, seed: int) -> LotteryPool:
    return from_config(LotteryPool, cfg, density)
