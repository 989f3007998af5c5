"""The pruner registry: each method is a named combination of criterion, schedule, selection and
timing, built from its resolved config (conf/pruner/<name>.yaml, per-task defaults already filled)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from seven_bench.pruning import criteria
from seven_bench.pruning.base import Pruner
from seven_bench.pruning.dyn import SevenDyn
from seven_bench.pruning.gmp import build_gmp
from seven_bench.pruning.movement import build_movement, build_soft_movement
from seven_bench.pruning.platon import build_platon
from seven_bench.pruning.pre import PrePruner
from seven_bench.pruning.schedules import PRE_SCHEDULES, one_shot
from seven_bench.pruning.selection import resolve_count_rule
from seven_bench.pruning.wanda import build_wanda
from seven_bench.registry import Registry

Config = Mapping[str, Any]


@dataclass(frozen=True)
class PrunerEntry:
    name: str
    timing: str  # "pre" | "dyn" | "none"
    build: Callable[[Config, float, int], Pruner]  # (resolved config, density, seed) -> pruner
    description: str


PRUNERS: Registry[PrunerEntry] = Registry("pruner")


def _nm(cfg: Config) -> tuple[int, int] | None:
    """(n, m) when the cell asks for N:M selection (`pruner.selection=nm pruner.n=2 pruner.m=4`)."""
    return (int(cfg.get("n", 2)), int(cfg.get("m", 4))) if cfg.get("selection") == "nm" else None


def _one_shot(name: str, criterion: criteria.Criterion, cfg: Config, density: float, **kw: Any) -> PrePruner:
    return PrePruner(
        name,
        density,
        criterion,
        one_shot,
        steps=1,
        selection=cfg.get("selection", "global"),
        grad_mode=cfg.get("grad_mode", "train"),
        count_rule=resolve_count_rule(cfg.get("count_rule"), name),
        nm=_nm(cfg),
        **kw,
    )


def _iterative(name: str, cfg: Config, density: float, resurrection: bool) -> PrePruner:
    return PrePruner(
        name,
        density,
        criteria.Snip(),
        PRE_SCHEDULES[cfg["schedule"]],
        steps=int(cfg["num_steps"]),
        batches_per_step=int(cfg["num_batches"]),
        selection=cfg.get("selection", "global"),
        resurrection=resurrection,
        grad_mode=cfg.get("grad_mode", "train"),
        count_rule=resolve_count_rule(cfg.get("count_rule"), name),
    )


def _seven_criterion(cfg: Config) -> criteria.Seven:
    return criteria.Seven(
        float(cfg["alpha1"]), float(cfg["alpha2"]), float(cfg["eps"]), cfg["first_moment"], cfg["correction"]
    )


def _seven_pre(cfg: Config, density: float, seed: int) -> PrePruner:
    return PrePruner(
        "seven_pre",
        density,
        _seven_criterion(cfg),
        PRE_SCHEDULES[cfg["schedule"]],
        steps=int(cfg["num_batches"]),
        selection=cfg.get("selection", "global"),
        resurrection=bool(cfg["resurrection"]),
        grad_mode=cfg.get("grad_mode", "train"),
        count_rule=resolve_count_rule(cfg.get("count_rule"), "seven_pre"),
        nm=_nm(cfg),
    )


def _seven_dyn(cfg: Config, density: float, seed: int) -> SevenDyn:
    return SevenDyn(
        density,
        int(cfg["start"]),
        int(cfg["window"]),
        float(cfg["alpha1"]),
        float(cfg["alpha2"]),
        float(cfg["eps"]),
        cfg["first_moment"],
        cfg["correction"],
        bool(cfg.get("fit_schedule", False)),
        resolve_count_rule(cfg.get("count_rule"), "seven_dyn"),
    )


for _entry in (
    PrunerEntry("dense", "none", lambda cfg, d, seed: Pruner(1.0), "no pruning (the Full/Dense rows)"),
    PrunerEntry(
        "random",
        "pre",
        lambda cfg, d, seed: _one_shot("random", criteria.Random(seed), cfg, d),
        "i.i.d. random scores, one global cut",
    ),
    PrunerEntry(
        "magnitude",
        "pre",
        lambda cfg, d, seed: _one_shot("magnitude", criteria.Magnitude(), cfg, d),
        "one-shot |W| of the pretrained weights (OMP)",
    ),
    PrunerEntry(
        "snip",
        "pre",
        lambda cfg, d, seed: _one_shot("snip", criteria.Snip(), cfg, d, batches_per_step=int(cfg["num_batches"])),
        "|W * g| on one mini-batch, one-shot",
    ),
    PrunerEntry(
        "grasp",
        "pre",
        lambda cfg, d, seed: _one_shot(
            "grasp",
            criteria.Grasp(),
            cfg,
            d,
            samples_per_class=int(cfg["samples_per_class"]),
            temperature=float(cfg["temperature"]),
        ),
        "W * Hg on a class-balanced sample at temperature 200, keep the smallest -W*Hg",
    ),
    PrunerEntry(
        "iter_snip",
        "pre",
        lambda cfg, d, seed: _iterative("iter_snip", cfg, d, resurrection=False),
        "SNIP repeated on the pruned net over an exponential schedule, no resurrection",
    ),
    PrunerEntry(
        "force",
        "pre",
        lambda cfg, d, seed: _iterative("force", cfg, d, resurrection=True),
        "FORCE: |W0 * g(W*M)| over an exponential schedule, pruned weights may return",
    ),
    PrunerEntry(
        "seven_pre", "pre", _seven_pre, "SEVEN-pre (Algorithm 1): accumulated noise-corrected |W g| over N batches"
    ),
    PrunerEntry(
        "wanda",
        "pre",
        build_wanda,
        "Wanda: |W| * ||X_j||_2 from a calibration pass, per output row, sequential over blocks",
    ),
    PrunerEntry("seven_dyn", "dyn", _seven_dyn, "SEVEN-dyn: the SEVEN score inside the fine-tuning loop, cubic window"),
):
    PRUNERS.add(_entry.name, _entry)


# Dynamic baselines of Table III (their own papers' algorithms; `variant: seven_repo` = the SEVEN repo's).

for _entry in (
    PrunerEntry(
        "platon",
        "dyn",
        build_platon,
        "PLATON: |W g| window-averaged, EMA sensitivity x uncertainty, cubic with warm-ups, global, regrowth",
    ),
    PrunerEntry(
        "movement",
        "dyn",
        build_movement,
        "movement pruning: learned scores, TopK straight-through, cubic with warm-ups (per tensor)",
    ),
    PrunerEntry(
        "soft_movement",
        "dyn",
        build_soft_movement,
        "soft movement: sigmoid(S) > tau plus an L1 penalty on sigmoid(S); sparsity is indirect",
    ),
    PrunerEntry("gmp", "dyn", build_gmp, "gradual magnitude pruning, cubic schedule with warm-ups, global"),
):
    PRUNERS.add(_entry.name, _entry)
