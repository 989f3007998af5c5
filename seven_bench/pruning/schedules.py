"""Keep-ratio schedules: pure functions of the pruning step (ALGORITHMS.md section 3).

`density` is the final keep ratio d = 1 - sparsity. Pre-pruning schedules take t = 1..n and reach d
exactly at t = n.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

PreSchedule = Callable[[float, int, int], float]


def one_shot(density: float, t: int, n: int) -> float:
    """SNIP, GraSP, magnitude, random: the target at once."""
    return density


def exponential(density: float, t: int, n: int) -> float:
    """d^(t/n): geometric decay from 1 to d (FORCE mode='exp', SynFlow, SEVEN-pre), computed as FORCE's
    `iterative_pruning` does (exp(-t * -log d / n) in numpy float64): int(r * n) of the next cut depends on
    the last bit."""
    return float(np.exp(0 - (t * (0 - np.log(density)) / n)))


def linear(density: float, t: int, n: int) -> float:
    """1 - t(1 - d)/n, in FORCE's operation order (mode='linear')."""
    return 1 - (t * (1 - density) / n)


PRE_SCHEDULES: dict[str, PreSchedule] = {"one_shot": one_shot, "exponential": exponential, "linear": linear}


def seven_cubic(density: float, k: int, window: int) -> float:
    """SEVEN-dyn code: r_k = d + (1-d)(1-(k+1)/T)^3 for pruning step k = 0..T-2 (strategies/pruner.py).
    The last step is k = T-2, so the target is reached only up to a (1/T)^3 residual, as in the code."""
    return density + (1.0 - density) * (1.0 - (k + 1) / window) ** 3


def cubic(
    step: int,
    *,
    total_steps: int,
    initial_warmup_steps: int,
    final_warmup_steps: int,
    initial_ratio: float,
    final_ratio: float,
) -> float:
    """Zhu & Gupta cubic with warm-ups as in movement pruning's `schedule_threshold` and PLATON's
    `schedule_threshold_comb`: r0 up to t_i, r_f after T - t_f, cubic in between."""
    if step <= initial_warmup_steps:
        return initial_ratio
    if step > total_steps - final_warmup_steps:
        return final_ratio
    span = total_steps - initial_warmup_steps - final_warmup_steps
    progress = 1.0 - (step - initial_warmup_steps) / span
    return final_ratio + (initial_ratio - final_ratio) * progress**3
