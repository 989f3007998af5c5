"""Wanda (Sun, Liu, Bair, Kolter 2023; locuslab/wanda `lib/prune.py::prune_wanda`, ALGORITHMS.md 4.16):
score |W_ij| * ||X_j||_2 from a calibration pass, compared within each output row, no weight update; then the
cell fine-tunes like any pre-pruner.

As in `prune_wanda`, calibration is sequential: the layers are pruned in order, each calibrated on the
outputs of the layers already pruned (every weight of one encoder block from the same pass). Calibration
takes `nsamples` rows (sequences or images) from the training stream; padding tokens are left out.
`selection=global` (one threshold over all weights, an option) needs every score at once, so it
calibrates the dense model in one pass; `selection=nm` gives Wanda's N:M variant."""

from __future__ import annotations

import functools
import re
from typing import Any, Mapping

import torch

from seven_bench.pruning.base import Masks, PruneContext, Pruner, batch_rows
from seven_bench.pruning.configured import from_config
from seven_bench.pruning.selection import (
    SELECTIONS,
    check_nm,
    check_rule,
    check_selection,
    nm_groups_ok,
    nm_topk,
    resolve_count_rule,
)

_BLOCK = re.compile(r"\.(?:layer|layers|resblocks|blocks|h)\.(\d+)\.")


def wanda_scores(weight: torch.Tensor, input_norms: torch.Tensor) -> torch.Tensor:
    """|W_ij| * ||X_j||_2: input feature j's norm scales column j of the (out, in) weight."""
    return weight.detach().abs().float() * input_norms.float().reshape(1, -1)


def block_groups(names: list[str]) -> list[list[str]]:
    """Prunable tensors grouped by transformer block, in order; tensors outside a block (the pooler) last."""
    blocks: dict[int, list[str]] = {}
    rest: list[str] = []
    for name in names:
        found = _BLOCK.search(name)
        (blocks.setdefault(int(found.group(1)), []) if found else rest).append(name)
    return [blocks[i] for i in sorted(blocks)] + ([rest] if rest else [])


def calibration_rows(ctx: PruneContext, nsamples: int) -> list[dict[str, Any]]:
    """Exactly `nsamples` rows from the training stream (the last batch trimmed)."""
    picked: list[dict[str, Any]] = []
    taken = 0
    while taken < nsamples:
        batch = next(ctx.batches)
        rows = min(batch_rows(batch), nsamples - taken)
        picked.append({k: v[:rows] if torch.is_tensor(v) else v for k, v in batch.items()})
        taken += rows
    return picked


class Wanda(Pruner):
    name = "wanda"
    timing = "pre"

    def __init__(
        self,
        density: float,
        nsamples: int = 128,
        selection: str = "row",
        count_rule: str = "prune_floor",
        sequential: bool = True,
        nm: tuple[int, int] | None = None,
    ):
        super().__init__(density)
        if int(nsamples) < 1:
            raise ValueError("nsamples must be positive")
        self.nsamples = int(nsamples)
        self.selection = check_selection(selection)
        self.count_rule = check_rule(count_rule)
        self.nm = check_nm(*(nm or (2, 4)), density) if selection == "nm" else None
        self.select = functools.partial(nm_topk, n=self.nm[0], m=self.nm[1]) if self.nm else SELECTIONS[selection]
        self.sequential = bool(sequential) and selection != "global"
        self.calibration_tokens = 0

    def prepare(self, ctx: PruneContext) -> None:
        batches = calibration_rows(ctx, self.nsamples)
        self.calibration_tokens = int(
            sum(int(b["attention_mask"].sum()) if "attention_mask" in b else batch_rows(b) for b in batches)
        )
        groups = block_groups(list(ctx.prunable)) if self.sequential else [list(ctx.prunable)]
        was_training = ctx.model.training
        ctx.model.eval()  # calibration is inference: no dropout
        masks: Masks = {}
        try:
            for group in groups:
                norms = ctx.signal("activation_norm", batches, names=group)
                scores = {n: wanda_scores(ctx.prunable[n], norms[n]) for n in group}
                cut = self.select(scores, self.density, None, count_rule=self.count_rule)
                with torch.no_grad():
                    for n in group:
                        ctx.prunable[n].mul_(cut[n])  # later blocks calibrate on this block's pruned output
                masks.update(cut)
        finally:
            ctx.model.train(was_training)
        self.masks = {n: masks[n] for n in ctx.prunable}

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "nsamples": self.nsamples,
            "calibration_tokens": self.calibration_tokens,
            "sequential": self.sequential,
            "selection": self.selection,
            "count_rule": self.count_rule,
            "score": "|W| * ||X_j||_2 (padding excluded)",
        }
        if self.nm and self.masks is not None:
            out.update(
                nm=f"{self.nm[0]}:{self.nm[1]}",
                nm_valid=all(nm_groups_ok(mask, *self.nm) for mask in self.masks.values()),
            )
        return out


def build_wanda(cfg: Mapping[str, Any], density: float, seed: int) -> Wanda:
    nm = (int(cfg["n"]), int(cfg["m"])) if cfg["selection"] == "nm" else None
    return from_config(Wanda, cfg, density, count_rule=resolve_count_rule(cfg["count_rule"], "wanda"), nm=nm)
