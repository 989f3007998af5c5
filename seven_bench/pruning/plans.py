"""Plans: WHEN a dyn pruner feeds its criterion and cuts a new mask, and to WHAT keep ratio (the
schedule and timing parts of DESIGN.md for pruning inside the training loop).

A plan answers one question per optimizer step, `decide(step) -> Decision`, from the step index alone
(plus the cut it last made), so one `DynPruner` runs every dyn method:

* `SevenWindow`: SEVEN's window [t_i, t_i + T - 1), r_k = d + (1 - d)(1 - (k + 1)/T)^3 with k = step - t_i,
  criterion and cut on every window step (SEVEN-dyn and the SEVEN repository's re-implementations);
* `CubicWarmups`: the Zhu & Gupta cubic with warm-ups (movement's `schedule_threshold`, PLATON's
  `schedule_threshold_comb`), with two timings: `PlatonTiming` (criterion every step, t = step + 1, cut every
  deltaT steps in the ramp and every step after it) and `GmpTiming` (cut every `update_frequency` steps
  towards r(step + 1), only when that lowers the keep ratio).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from seven_bench.errors import UserError
from seven_bench.pruning.schedules import cubic, seven_cubic

TRAJECTORY_POINTS = 400  # record at most about this many (step, target, achieved) points


@dataclass
class Trajectory:
    """(step, target keep, achieved keep) points of a dyn schedule, thinned to about TRAJECTORY_POINTS
    over the span being scheduled and always holding its last step, so long runs keep small records."""

    every: int = 1
    points: list[dict[str, Any]] = field(default_factory=list)

    def plan(self, span: int) -> None:
        self.every = max(1, span // TRAJECTORY_POINTS)

    def due(self, step: int, last_step: int) -> bool:
        return not self.points or step - self.points[-1]["step"] >= self.every or step == last_step

    def add(self, step: int, target_keep: float | None, achieved_keep: float, **extra: float) -> None:
        self.points.append({"step": step, "target_keep": target_keep, "achieved_keep": achieved_keep, **extra})


@dataclass(frozen=True)
class Decision:
    update: bool  # feed the criterion this step's signal
    t: int  # the criterion's step counter (bias corrections, PLATON's windows)
    ratio: float | None  # the keep ratio this step aims at (None outside the schedule)
    cut: bool  # select a new mask now


class Plan:
    """Base: `prepare` fits the plan to the cell's steps and returns warnings; `decide` is called once
    per optimizer step. `last_step` and `record_every_step` steer the recorded trajectory."""

    record_every_step = False
    last_step = 0
    span = 1  # steps the trajectory is thinned over

    def prepare(self, total_steps: int, name: str) -> list[str]:
        raise NotImplementedError

    def decide(self, step: int) -> Decision:
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        return {}


def fit_window(start: int, window: int, total_steps: int) -> tuple[int, int]:
    """Compress [start, start + window - 1) proportionally so its last pruning step is the last
    training step (the `fit_schedule` option for RTE/STS-B, whose paper window outlasts training)."""
    if start + window - 1 <= total_steps:
        return start, window
    new_start = int(math.floor(start * total_steps / (start + window)))
    return new_start, max(2, total_steps - new_start + 1)


class SevenWindow(Plan):
    """xiaojinying/SEVEN `utils.py::train_eval_loop`: pruning iterations t_i <= step < t_i + T - 1."""

    def __init__(self, density: float, start: int, window: int, fit_schedule: bool = False):
        self.density = density
        self.start, self.window = int(start), int(window)
        self.paper_start, self.paper_window = self.start, self.window
        self.fit_schedule = bool(fit_schedule)

    def ratio_at(self, k: int) -> float:
        return seven_cubic(self.density, k, self.window)

    def in_window(self, step: int) -> bool:
        return self.start <= step < self.start + self.window - 1

    def prepare(self, total_steps: int, name: str) -> list[str]:
        if self.fit_schedule:
            self.start, self.window = fit_window(self.start, self.window, total_steps)
        self.last_step = self.start + self.window - 2
        self.span = self.window - 1
        end = self.start + self.window - 1
        if end <= total_steps:
            return []
        last_k = total_steps - 1 - self.start
        reached = 1.0 - self.ratio_at(last_k) if last_k >= 0 else 0.0
        return [
            f"pruning window [{self.start}, {end}) outlasts the {total_steps} training steps: the schedule "
            f"stops at sparsity {reached:.3f} instead of {1 - self.density:.3f} (pass pruner.fit_schedule=true "
            f"to compress it)"
        ]

    def decide(self, step: int) -> Decision:
        if not self.in_window(step):
            return Decision(False, 0, None, False)
        k = step - self.start
        return Decision(True, k + 1, self.ratio_at(k), True)

    def summary(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "window": self.window,
            "fit_schedule": self.fit_schedule,
            "paper_start": self.paper_start,
            "paper_window": self.paper_window,
        }


@dataclass(frozen=True)
class CubicPlan:
    """The cubic schedule of one cell: `at(t)` is r0 for t <= t_i, r_f for t > total - t_f, cubic between."""

    total: int
    warmup_steps: int
    t_i: int
    t_f: int
    initial: float
    final: float

    def at(self, t: int) -> float:
        return cubic(
            t,
            total_steps=self.total,
            initial_warmup_steps=self.t_i,
            final_warmup_steps=self.t_f,
            initial_ratio=self.initial,
            final_ratio=self.final,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "total_steps": self.total,
            "warmup_steps": self.warmup_steps,
            "t_i": self.t_i,
            "t_f": self.t_f,
            "initial": self.initial,
            "final": self.final,
        }


def fit_warmups(warmup_steps: int, initial_warmup: float, final_warmup: float, total: int) -> int:
    """`fit_schedule` for the cubic-with-warm-ups schedule: when t_i + t_f leaves no ramp inside the
    cell's steps, shrink warmup_steps so the ramp gets one share of (initial_warmup + final_warmup + 1)."""
    if (initial_warmup + final_warmup) * warmup_steps < total:
        return warmup_steps
    return max(0, int(total // (initial_warmup + final_warmup + 1)))


class CubicWarmups(Plan):
    """t_i = initial_warmup * warmup_steps, t_f = final_warmup * warmup_steps, T = the cell's steps; the
    value runs from `initial` to `final` (keep ratios, or soft movement's sigmoid thresholds)."""

    def __init__(
        self,
        warmup_steps: int | None,
        initial_warmup: float,
        final_warmup: float,
        initial: float,
        final: float,
        fit_schedule: bool = False,
        name: str = "pruner",
    ):
        if warmup_steps is None or int(warmup_steps) < 0:
            raise UserError(
                f"pruner={name} has no per-task warmup_steps for this task: pass "
                f"pruner.warmup_steps=<steps> (t_i = initial_warmup * warmup_steps)"
            )
        self.warmup_steps = self.paper_warmup_steps = int(warmup_steps)
        self.initial_warmup, self.final_warmup = float(initial_warmup), float(final_warmup)
        self.initial, self.final = float(initial), float(final)
        self.fit_schedule = bool(fit_schedule)
        self.plan: CubicPlan | None = None

    def prepare(self, total_steps: int, name: str) -> list[str]:
        total = int(total_steps)
        if self.fit_schedule:
            self.warmup_steps = fit_warmups(self.warmup_steps, self.initial_warmup, self.final_warmup, total)
        t_i, t_f = int(self.initial_warmup * self.warmup_steps), int(self.final_warmup * self.warmup_steps)
        self.plan = CubicPlan(total, self.warmup_steps, t_i, t_f, self.initial, self.final)
        self.last_step, self.span = total - 1, total
        if t_i >= total:
            return [
                f"{name}: the cubic schedule starts after step t_i={t_i} but the cell trains {total} steps: "
                f"nothing is pruned (pass pruner.fit_schedule=true to compress the warm-ups)"
            ]
        if t_i + t_f >= total:
            return [
                f"{name}: t_i={t_i} + t_f={t_f} leave no cubic ramp inside the {total} training steps: the "
                f"schedule jumps to its final value after step {t_i} (pass pruner.fit_schedule=true)"
            ]
        return []

    def at(self, t: int) -> float:
        assert self.plan is not None, "prepare() first"
        return self.plan.at(t)

    def summary(self) -> dict[str, Any]:
        return {
            "schedule": "cubic_with_warmups",
            "plan": None if self.plan is None else self.plan.as_dict(),
            "initial_warmup": self.initial_warmup,
            "final_warmup": self.final_warmup,
            "paper_warmup_steps": self.paper_warmup_steps,
            "fit_schedule": self.fit_schedule,
        }


class PlatonTiming(CubicWarmups):
    """PLATON's `update_and_pruning` after every optimizer step, counted t = step + 1 (MT-DNN increments
    its counter before `optimizer.step()`): importance updated every step; a new mask at t % deltaT == 0
    inside the ramp and at every step of the final phase (`schedule_threshold_comb`)."""

    def __init__(
        self,
        warmup_steps: int | None,
        initial_warmup: float,
        final_warmup: float,
        initial: float,
        final: float,
        delta_t: int,
        fit_schedule: bool = False,
        name: str = "platon",
    ):
        super().__init__(warmup_steps, initial_warmup, final_warmup, initial, final, fit_schedule, name)
        if int(delta_t) < 1:
            raise UserError(f"pruner.deltaT={delta_t} must be >= 1")
        self.delta_t = int(delta_t)

    def schedule(self, t: int) -> tuple[float, bool]:
        """(keep ratio, whether the mask is recomputed at t), as `schedule_threshold_comb`."""
        assert self.plan is not None
        if t <= self.plan.t_i:
            return self.plan.initial, False
        if t > self.plan.total - self.plan.t_f:
            return self.plan.final, True
        return self.plan.at(t), t % self.delta_t == 0

    def decide(self, step: int) -> Decision:
        ratio, cut = self.schedule(step + 1)
        return Decision(True, step + 1, ratio, cut)


class GmpTiming(CubicWarmups):
    """Gradual magnitude pruning (movement repo convention): after optimizer step s the mask for the next
    forward keeps r(s + 1), recomputed every `update_frequency` steps and always on the last step, only
    when that lowers the keep ratio (so the cell ends exactly at d)."""

    record_every_step = True

    def __init__(
        self,
        warmup_steps: int | None,
        initial_warmup: float,
        final_warmup: float,
        final: float,
        update_frequency: int = 1,
        fit_schedule: bool = False,
        name: str = "gmp",
    ):
        super().__init__(warmup_steps, initial_warmup, final_warmup, 1.0, final, fit_schedule, name)
        self.update_frequency = max(1, int(update_frequency))
        self._kept_ratio = 1.0

    def decide(self, step: int) -> Decision:
        ratio = self.at(step + 1)
        due = (step + 1) % self.update_frequency == 0 or step == self.last_step
        cut = due and ratio < self._kept_ratio
        if cut:
            self._kept_ratio = ratio
        return Decision(cut, step + 1, ratio, cut)
