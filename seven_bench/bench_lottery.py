"""`make bench`'s lottery part: what a 3-sparsity LTH sweep costs in optimizer steps with the shared IMP path
against one path per cell, and how long a killed multi-round cell takes to get back to where it was killed
(its finished rounds are loaded, so the lost work is at most the round in progress; a killed fine-tune loses
at most one checkpoint interval)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import seven_bench.pruning.lth as lth
import seven_bench.train as train
from seven_bench.conf import compose_config
from seven_bench.run import run_cell
from seven_bench.sources import data_root
from seven_bench.spec import build_spec

SPARSITIES = (0.1, 0.2, 0.3)


class _Killed(Exception):
    pass


def _cell(model: str, results: Path, sparsity: float, steps: int, extra: list[str] | None = None) -> dict[str, Any]:
    overrides = [
        f"model={model}",
        "task=rte",
        "pruner=lth",
        f"sparsity={sparsity}",
        "task.max_train_examples=256",
        "task.max_eval_examples=64",
        f"trainer.max_steps={steps}",
        "progress=false",
        *(extra or []),
    ]
    return run_cell(build_spec(compose_config(overrides)), results, progress=False)


def _steps(record: dict[str, Any]) -> int:
    """Optimizer steps a cell ran: the path rounds it ran here plus its fine-tune."""
    return int(record["pruner"]["artifact"]["steps_ran_here"]) + int(record["timing"]["steps"])


def bench_lottery(model: str = "minilm", steps: int = 4) -> dict[str, Any]:
    """Run the sweep twice (one shared path; a fresh results dir per cell), then kill a 3-round cell at the
    start of round 3 and rerun it; and kill a fine-tune between checkpoints and rerun it."""
    if model == "minilm" and not (data_root() / "glue" / "RTE").is_dir():
        model = "tiny_bert"  # the stand-in needs the shared RTE files; tiny_bert runs on them too if present
    out: dict[str, Any] = {"model": model, "task": "rte", "round_steps": steps, "sparsities": list(SPARSITIES)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _cell(model, root / "warm-up", 0.0, 1)  # imports, tokenizer and data caches: not part of either sweep
        started = time.perf_counter()
        shared = [_cell(model, root / "shared", s, steps) for s in SPARSITIES]
        out["reuse_seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        alone = [_cell(model, root / f"alone{s}", s, steps) for s in SPARSITIES]
        out["no_reuse_seconds"] = time.perf_counter() - started
        out["reuse_steps"] = sum(_steps(r) for r in shared)
        out["no_reuse_steps"] = sum(_steps(r) for r in alone)
        out["path_rounds_reuse"] = sum(len(r["pruner"]["artifact"]["rounds_ran_here"]) for r in shared)
        out["target_steps"] = (max(SPARSITIES) * 10 + len(SPARSITIES)) * steps  # 1 path + 1 fine-tune each
        out["metrics"] = [r["metrics"]["reported_value"] for r in shared]
        out.update(_resume_round(model, root / "killed", steps))
        out.update(_resume_fine_tune(model, root / "killed_ft", steps))
    return out


def _resume_round(model: str, results: Path, steps: int) -> dict[str, Any]:
    real, calls, reached = lth.run_steps, {"n": 0}, {}
    started = time.perf_counter()

    def dying(*args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 3:
            reached["first"] = time.perf_counter() - started
            raise _Killed("killed at the start of round 3")
        return real(*args, **kwargs)

    lth.run_steps = dying  # type: ignore[assignment]
    try:
        _cell(model, results, 0.3, steps)
    finally:
        lth.run_steps = real  # type: ignore[assignment]
    calls["n"] = 0
    started = time.perf_counter()

    def timing(*args: Any, **kwargs: Any) -> int:
        reached.setdefault("again", time.perf_counter() - started)
        return real(*args, **kwargs)

    lth.run_steps = timing  # type: ignore[assignment]
    try:
        record = _cell(model, results, 0.3, steps)
    finally:
        lth.run_steps = real  # type: ignore[assignment]
    return {
        "kill_round": 3,
        "seconds_to_round3_first_run": reached["first"],
        "seconds_to_round3_after_resume": reached["again"],
        "rounds_reloaded": record["pruner"]["artifact"]["rounds_stored_before"],
        "lost_round_steps": 0,  # killed at the round's start; at worst one round (`round_steps`) is lost
    }


def _resume_fine_tune(model: str, results: Path, steps: int) -> dict[str, Any]:
    """Kill the fine-tune of a 1-round cell at step 6 with a checkpoint every 4 steps; rerun it."""
    real = train.train_step
    ft_steps, every, kill = max(steps, 8), 4, 6

    def dying(*args: Any, **kwargs: Any) -> Any:
        if args[5] == kill:
            raise _Killed("killed in the fine-tune")
        return real(*args, **kwargs)

    extra = [f"trainer.checkpoint_every={every}", "pruner.round_steps=2"]  # the kill lands in the fine-tune
    train.train_step = dying  # type: ignore[assignment]
    try:
        first = _cell(model, results, 0.1, ft_steps, extra)
    finally:
        train.train_step = real  # type: ignore[assignment]
    started = time.perf_counter()
    record = _cell(model, results, 0.1, ft_steps, extra)
    resumed_from = (record.get("checkpoints") or {}).get("resumed_from") or {}
    return {
        "fine_tune_killed_at_step": kill,
        "fine_tune_checkpoint_every": every,
        "fine_tune_first_status": first["status"],
        "fine_tune_resumed_from": resumed_from or None,
        "fine_tune_lost_steps": kill - int(resumed_from.get("step", 0)),
        "fine_tune_rerun_seconds": time.perf_counter() - started,
    }
