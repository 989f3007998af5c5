"""The proxy study's statistics: ranking agreement with the paper and paired differences over seeds.

Pure functions of plain numbers, tested by hand-computed examples (tests/test_proxy_report.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from scipy import stats

MIN_RANKED = 3  # fewer methods give a tau of only -1, 0 or 1: no evidence either way
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Agreement:
    """Kendall's tau-b between our ordering of methods and the paper's, over the methods both have."""

    tau: float  # NaN when fewer than MIN_RANKED methods are shared or one side is all ties
    p_value: float
    methods: tuple[str, ...]  # the methods compared, best first by our mean

    @property
    def n(self) -> int:
        return len(self.methods)


def rank_agreement(ours: Mapping[str, float], paper: Mapping[str, float]) -> Agreement:
    """Kendall's tau of the two orderings on the methods with a number on both sides.

    Examples:
        >>> agreement = rank_agreement({"a": 4, "b": 3, "c": 2, "d": 1}, {"a": 4, "b": 2, "c": 3, "d": 1})
        >>> round(agreement.tau, 3), agreement.n  # 5 of 6 pairs agree: (5 - 1) / 6
        (0.667, 4)
    """
    shared = [m for m in ours if m in paper and math.isfinite(ours[m]) and math.isfinite(paper[m])]
    shared.sort(key=lambda method: -ours[method])
    if len(shared) < MIN_RANKED:
        return Agreement(math.nan, math.nan, tuple(shared))
    result = stats.kendalltau([ours[m] for m in shared], [paper[m] for m in shared])
    return Agreement(float(result.statistic), float(result.pvalue), tuple(shared))


def mean_tau(agreements: Sequence[Agreement]) -> tuple[float, int]:
    """The unweighted mean of the defined per-column taus, and how many columns it averages.

    Columns are averaged rather than pooled: pooling would rank methods across tasks whose metrics differ in
    scale, so it would measure the tasks' difficulty instead of the methods' order.
    """
    taus = [agreement.tau for agreement in agreements if not math.isnan(agreement.tau)]
    return (sum(taus) / len(taus) if taus else math.nan), len(taus)


@dataclass(frozen=True)
class PairedDifference:
    """``reference − other`` over the seeds both have, with a ``CONFIDENCE`` t interval on its mean."""

    seeds: tuple[int, ...]
    mean: float
    low: float  # NaN for fewer than two seeds
    high: float
    ahead: int = 0  # seeds on which reference > other
    behind: int = 0  # seeds on which reference < other

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def verdict(self) -> str:
        return verdict(self.low, self.high, self.n)


def paired_difference(reference: Mapping[int, float], other: Mapping[int, float]) -> PairedDifference:
    """Mean of ``reference[seed] − other[seed]`` over shared seeds and its t confidence interval.

    Seeds pair the runs (same data order, same initial classifier), so the spread of the difference, not the
    spread of each method, decides whether two methods can be told apart.

    Examples:
        >>> d = paired_difference({0: 72.0, 1: 73.0, 2: 74.0}, {0: 70.0, 1: 70.0, 2: 70.0})
        >>> round(d.mean, 3), round(d.low, 3), round(d.high, 3)  # 3 ± t(0.975, 2) · 1/√3
        (3.0, 0.516, 5.484)
    """
    seeds = tuple(sorted(seed for seed in reference if seed in other))
    diffs = [reference[seed] - other[seed] for seed in seeds]
    signs = {"ahead": sum(d > 0 for d in diffs), "behind": sum(d < 0 for d in diffs)}
    if not diffs:
        return PairedDifference(seeds, math.nan, math.nan, math.nan)
    mean = sum(diffs) / len(diffs)
    if len(diffs) < 2:
        return PairedDifference(seeds, mean, math.nan, math.nan, **signs)
    std = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
    if std <= 1e-9 * max(1.0, abs(mean)):
        # Equal differences (accuracy counts examples, so two seeds can differ by the same 7 of 408) have no
        # spread: the t interval would have zero width and call any such pair separated. That is no evidence.
        return PairedDifference(seeds, mean, math.nan, math.nan, **signs)
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(diffs) - 1)) * std / math.sqrt(len(diffs))
    return PairedDifference(seeds, mean, mean - half, mean + half, **signs)


def seeds_phrase(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def verdict(low: float, high: float, n: int) -> str:
    """``better`` or ``worse`` when the interval of ``reference − other`` lies above or below 0, else
    ``cannot separate with n seeds`` (also when there is no interval: fewer than two seeds, or equal differences)."""
    if n < 2 or math.isnan(low) or math.isnan(high) or low <= 0.0 <= high:
        return f"cannot separate with {seeds_phrase(n)}"
    return "better" if low > 0.0 else "worse"
