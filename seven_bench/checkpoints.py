"""Fine-tune checkpoints: a long fine-tune killed mid-way (Ctrl-C, SIGTERM, a SLURM preemption) resumes from
its last checkpoint when the cell is rerun, losing at most one checkpoint interval.

A checkpoint is one file, `results_dir/checkpoints/<cell hash>/checkpoint.pt`, written atomically (temporary
name + rename): model, optimizer, scheduler, the pruner's state (`Pruner.state_dict`) and the tensors it
trains through `param_groups`, the step, the epoch and the batches of it already consumed, the shuffling
generator's state at that epoch's start, and every RNG state. Resuming restores all of them and skips the
consumed batches, so a resumed CPU run ends bit for bit where the uninterrupted one does. The folder is
deleted when the cell completes unless `trainer.keep_checkpoints=true`.
"""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seven_bench.artifacts import load_tensors, save_tensors
from seven_bench.errors import UserError
from seven_bench.pruning.state import to_device

log = logging.getLogger("seven_bench")
FILE = "checkpoint.pt"


def checkpoint_interval(value: Any, steps_per_epoch: int) -> int:
    """`trainer.checkpoint_every` as optimizer steps: "epoch" (the default) is one epoch's steps, an
    integer is that many steps, 0 / null / false is off (0 returned)."""
    if value in (None, False, 0, "0", "off", "none"):
        return 0
    if value == "epoch":
        return max(1, int(steps_per_epoch))
    try:
        steps = int(value)
    except (TypeError, ValueError):
        raise UserError(f"trainer.checkpoint_every={value!r}: pass epoch, a number of steps, or 0 (off)") from None
    if steps < 0 or isinstance(value, bool):
        raise UserError(f"trainer.checkpoint_every={value!r}: pass epoch, a number of steps, or 0 (off)")
    return steps


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def loader_generator(loader: Any) -> torch.Generator | None:
    """The generator that shuffles `loader` each time it is iterated (None: a loader that does not shuffle
    by its own generator, e.g. a list in a unit test)."""
    generator = getattr(loader, "generator", None)
    return generator if isinstance(generator, torch.Generator) else None


def cell_checkpoint_dir(results_dir: str | Path, cell_hash: str) -> Path:
    """<results_dir>/checkpoints/<cell-hash>/: beside runs/, so a study's folder holds everything to resume it."""
    return Path(results_dir) / "checkpoints" / cell_hash


class Checkpointer:
    """Where one cell's fine-tune checkpoint lives, how often it is written, and whether it is kept."""

    def __init__(self, directory: str | Path, every_steps: int, keep: bool = False):
        self.dir = Path(directory)
        self.every_steps = int(every_steps)
        self.keep = bool(keep)
        self.saved = 0  # checkpoints written by this run
        self.resumed_from: dict[str, Any] | None = None  # step/epoch a resumed run started from

    @property
    def path(self) -> Path:
        return self.dir / FILE

    def due(self, step: int) -> bool:
        return self.every_steps > 0 and step % self.every_steps == 0

    def save(self, state: dict[str, Any]) -> None:
        save_tensors(self.path, {**state, "rng": rng_state()})
        self.saved += 1

    def load(self) -> dict[str, Any] | None:
        """The last checkpoint, or None. An unreadable file (a crash inside torch.save cannot leave one: the
        write is atomic, but a disk can) is set aside and the fine-tune starts over."""
        if not self.path.is_file():
            return None
        try:
            state = load_tensors(self.path)  # on the CPU: RNG states must stay there
        except Exception as err:  # noqa: BLE001 - any unreadable file means: start over
            log.warning("checkpoint %s unreadable (%s): starting the fine-tune over", self.path, err)
            self.path.rename(self.path.with_suffix(".unreadable"))
            return None
        self.resumed_from = {"step": state["step"], "epoch": state["epoch"], "batches_done": state["batches_done"]}
        return state

    def finish(self) -> None:
        """The cell completed: delete its checkpoints unless asked to keep them."""
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def summary(self) -> dict[str, Any]:
        return {
            "every_steps": self.every_steps,
            "written": self.saved,
            "resumed_from": self.resumed_from,
            "kept": self.keep,
            "dir": str(self.dir),
        }


def trained_extras(pruner: Any) -> list[torch.Tensor]:
    """The tensors a pruner trains through `param_groups` (movement's scores): trainer state like weights."""
    return [p for group in pruner.param_groups() for p in group["params"]]


def pack(model: torch.nn.Module, optimizer: Any, scheduler: Any, pruner: Any, **position: Any) -> dict[str, Any]:
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "pruner": pruner.state_dict(),
        "pruner_tensors": [t.detach().clone() for t in trained_extras(pruner)],
        **position,
    }


@torch.no_grad()
def unpack(
    state: dict[str, Any], model: torch.nn.Module, optimizer: Any, scheduler: Any, pruner: Any, device: torch.device
) -> None:
    """Put a checkpoint back: weights, pruner, optimizer (its state follows the parameters' device), schedule, RNGs."""
    model.load_state_dict(state["model"])
    pruner.load_state_dict(to_device(state["pruner"], device))
    extras = trained_extras(pruner)
    if len(extras) != len(state["pruner_tensors"]):
        raise RuntimeError("the checkpoint's pruner tensors do not match this pruner's: delete the checkpoint")
    for tensor, saved in zip(extras, state["pruner_tensors"]):
        tensor.copy_(saved)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
