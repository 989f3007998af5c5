"""The pruner registry: each method is a named combination of criterion, schedule, selection and
timing, built from its resolved config (conf/pruner/<name>.yaml, per-task defaults already filled)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from seven_bench.conf import pruner_defaults
from seven_bench.pruning import criteria
from seven_bench.pruning.base import Pruner
from seven_bench.pruning.configured import from_config
from seven_bench.pruning.dsp import build_dsp
from seven_bench.pruning.dyn import SevenDyn
from seven_bench.pruning.earlybird import build_earlybird
from seven_bench.pruning.gmp import build_gmp
from seven_bench.pruning.info_deletion import build_info_deletion
from seven_bench.pruning.isp import build_isp
from seven_bench.pruning.lottery_pool import build_lottery_pool
from seven_bench.pruning.lth import build_lth, build_lth_rewind
from seven_bench.pruning.movement import build_movement, build_soft_movement
from seven_bench.pruning.platon import build_platon
from seven_bench.pruning.pre import PrePruner
from seven_bench.pruning.schedules import PRE_SCHEDULES, one_shot
from seven_bench.pruning.selection import resolve_count_rule
from seven_bench.pruning.spp import build_spp
from seven_bench.pruning.wanda import build_wanda
from seven_bench.registry import Registry

Config = Mapping[str, Any]


@dataclass(frozen=True)
class PrunerEntry:
    name: str
    timing: str  # "pre" | "dyn" | "none"
    build: Callable[[Config, float, int], Pruner]  # (resolved config, density, seed) -> pruner
    description: str
    modalities: tuple[str, ...] = ("text", "image")  # the model families it can prune (checked before loading)


PRUNERS: Registry[PrunerEntry] = Registry("pruner")


def _nm(cfg: Config) -> tuple[int, int] | None:
    """(n, m) when the cell asks for N:M selection (`pruner.selection=nm pruner.n=2 pruner.m=4`)."""
    return (int(cfg["n"]), int(cfg["m"])) if cfg["selection"] == "nm" else None


def _pre(
    name: str,
    criterion: criteria.Criterion,
    schedule: Any,
    cfg: Config,
    density: float,
    steps: int = 1,
    **fixed: Any,
) -> PrePruner:
    """A pre-pruner = criterion x schedule x the yaml's selection options (selection, grad_mode, resurrection,
    GraSP's sample; keyword-for-keyword)."""
    return from_config(
        PrePruner,
        cfg,
        name,
        density,
        criterion,
        schedule,
        steps=steps,
        count_rule=resolve_count_rule(cfg["count_rule"], name),
        nm=_nm(cfg),
        **fixed,
    )


def _one_shot(name: str, criterion: criteria.Criterion, cfg: Config, density: float, **fixed: Any) -> PrePruner:
    return _pre(name, criterion, one_shot, cfg, density, **fixed)


def _iterative(name: str, cfg: Config, density: float, resurrection: bool) -> PrePruner:
    return _pre(
        name,
        criteria.Snip(),
        PRE_SCHEDULES[cfg["schedule"]],
        cfg,
        density,
        steps=int(cfg["num_steps"]),
        batches_per_step=int(cfg["num_batches"]),
        resurrection=resurrection,
    )


def _seven_criterion(cfg: Config) -> criteria.Seven:
    return criteria.Seven(
        float(cfg["alpha1"]), float(cfg["alpha2"]), float(cfg["eps"]), cfg["first_moment"], cfg["correction"]
    )


def _seven_pre(cfg: Config, density: float, seed: int) -> PrePruner:
    return _pre(
        "seven_pre", _seven_criterion(cfg), PRE_SCHEDULES[cfg["schedule"]], cfg, density, int(cfg["num_batches"])
    )


def _seven_dyn(cfg: Config, density: float, seed: int) -> SevenDyn:
    return from_config(SevenDyn, cfg, density, count_rule=resolve_count_rule(cfg["count_rule"], "seven_dyn"))


def _with_yaml_defaults(entry: PrunerEntry) -> PrunerEntry:
    """Every build starts from conf/pruner/<name>.yaml, the one place defaults are written: a partial
    config (a test, a notebook) is filled from it, a composed cell's config already holds every key."""

    def build(cfg: Config, density: float, seed: int) -> Pruner:
        return entry.build({**pruner_defaults(entry.name), **cfg}, density, seed)

    return dataclasses.replace(entry, build=build)


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
        lambda cfg, d, seed: _one_shot("grasp", criteria.Grasp(), cfg, d),
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
    PRUNERS.add(_entry.name, _with_yaml_defaults(_entry))


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
    PRUNERS.add(_entry.name, _with_yaml_defaults(_entry))


# Solution Path Pruning: one search per (model, task, seed), cut per sparsity (structure_gates.py, spp.py).
PRUNERS.add(
    "spp",
    _with_yaml_defaults(
        PrunerEntry(
            "spp",
            "pre",
            build_spp,
            "SPP: solution path of qk/v head dims and FFN neurons, cut by cost",
            modalities=("text",),  # gates need separate q/k/v Linears: CLIP's packed MultiheadAttention has none
        )
    ),
)


# Differentiable Subset Pruning of attention heads: logits + Gumbel soft top-K gates in the loop (dsp.py).
PRUNERS.add(
    "dsp",
    _with_yaml_defaults(
        PrunerEntry("dsp", "dyn", build_dsp, "DSP: learned head logits, Gumbel soft top-K gates, top-K heads kept")
    ),
)


# Information Deletion (Fig. 4's extra BERT baseline): GMP during MLM pre-training, stored as an artifact.
PRUNERS.add(
    "info_deletion",
    _with_yaml_defaults(
        PrunerEntry(
            "info_deletion",
            "pre",
            build_info_deletion,
            "Information Deletion: per-tensor GMP during continued MLM pre-training, then fine-tune with the mask",
            modalities=("text",),
        )
    ),
)


# Early-bird and instant-soup tickets (Tables I/II): their searches train inside `prepare`, then the cell's
# fine-tune trains the ticket with the paper's recipe (earlybird.py, isp.py).
for _entry in (
    PrunerEntry(
        "earlybird",
        "pre",
        build_earlybird,
        "EarlyBird: global |W| masks during dense fine-tuning, drawn when the last 5 agree within 0.1 Hamming",
    ),
    PrunerEntry(
        "isp",
        "pre",
        build_isp,
        "Instant Soup Pruning: main training + 5 weak copies pruning 10% more, masks merged; gap one-shot",
    ),
):
    PRUNERS.add(_entry.name, _with_yaml_defaults(_entry))


# The lottery family (Tables I/II/V): one IMP path per (model, task, seed, path settings) serves every
# sparsity (an artifact written round by round); the cell then fine-tunes the ticket (lth.py, lottery_pool.py).
for _entry in (
    PrunerEntry(
        "lth", "pre", build_lth, "LTH: IMP as BERT-Tickets (10% of the original count per round, rewind to theta0)"
    ),
    PrunerEntry("lth_rewind", "pre", build_lth_rewind, "LTH-Rewind: IMP rewinding to the weights after k dense steps"),
    PrunerEntry(
        "lottery_pool",
        "pre",
        build_lottery_pool,
        "Lottery Pools: greedy interpolation of IMP tickets, re-pruned, scored on a held-out slice of train",
    ),
):
    PRUNERS.add(_entry.name, _with_yaml_defaults(_entry))
