"""Gradual magnitude pruning (Zhu & Gupta 2017), the "Progressive" rows: a `DynPruner` with the magnitude
criterion on `GmpTiming` (cubic with warm-ups, the movement repo's `--pruning_method magnitude` schedule).
After optimizer step s the mask for the next forward keeps the largest |W| at r(s + 1) (global by default),
recomputed every `update_frequency` steps and always on the last step, so the cell ends exactly at d.
Pruned weights are zero and stay pruned (the trainer re-applies the mask)."""

from __future__ import annotations

from typing import Any, Mapping

from seven_bench.errors import UserError
from seven_bench.pruning.configured import from_config
from seven_bench.pruning.criteria import Magnitude
from seven_bench.pruning.dyn import DynPruner
from seven_bench.pruning.plans import GmpTiming
from seven_bench.pruning.selection import resolve_count_rule


class Gmp(DynPruner):
    def __init__(
        self,
        density: float,
        warmup_steps: int,
        initial_warmup: float,
        final_warmup: float,
        selection: str = "global",
        update_frequency: int = 1,
        fit_schedule: bool = False,
        count_rule: str = "floor",
    ):
        plan = GmpTiming(warmup_steps, initial_warmup, final_warmup, density, update_frequency, fit_schedule)
        super().__init__("gmp", density, plan, Magnitude(), selection=selection, count_rule=count_rule)

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out["update_frequency"] = self.plan.update_frequency  # type: ignore[attr-defined]
        return out


def build_gmp(cfg: Mapping[str, Any], density: float, seed: int) -> Gmp:
    if str(cfg["variant"]) != "original":
        raise UserError("pruner=gmp has no seven_repo variant (the SEVEN repo has no magnitude baseline)")
    return from_config(Gmp, cfg, density, count_rule=resolve_count_rule(cfg["count_rule"], "gmp"))
