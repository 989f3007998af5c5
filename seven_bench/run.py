"""One cell end to end: build model and data, prune, fine-tune, evaluate, write the run record."""

from __future__ import annotations

import itertools
import logging
import random
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from seven_bench.artifacts import ArtifactStore
from seven_bench.checkpoints import Checkpointer, cell_checkpoint_dir, checkpoint_interval
from seven_bench.devices import resolve_device
from seven_bench.errors import CellInterrupted, NanLossError
from seven_bench.evaluate import evaluate
from seven_bench.interrupts import sigterm_raises
from seven_bench.models import MODELS
from seven_bench.pruning.base import (
    PruneContext,
    achieved_sparsity,
    apply_masks_,
    collapse_warnings,
    dead_output_units,
    pruned_but_nonzero,
)
from seven_bench.records import (
    SCHEMA_VERSION,
    environment,
    is_complete,
    load_record,
    now_iso,
    record_path,
    set_aside_corrupt,
    write_record,
)
from seven_bench.sources import data_root
from seven_bench.spec import CellSpec
from seven_bench.tasks import TASKS
from seven_bench.train import FitResult, fit, to_device

log = logging.getLogger("seven_bench")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def endless(loader: DataLoader, device: torch.device) -> Iterator[dict[str, Any]]:
    """Batches on the device forever (pre-pruners may need more batches than one epoch holds)."""
    for batch in itertools.chain.from_iterable(itertools.repeat(loader)):
        yield to_device(batch, device)


class CountedLoader:
    """The train loader, counting the batches the fine-tuning loop draws: the step an interrupted cell
    had reached, which fit() itself does not report until it returns."""

    def __init__(self, loader: DataLoader):
        self.loader, self.drawn = loader, 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for batch in self.loader:
            self.drawn += 1
            yield batch

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


def holdout_split(dataset: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    """(training part, held-out part) of the training set: a seeded random `fraction` held out of training
    for a pruner that scores candidates on it (Lottery Pools), never the dev set. (dataset, None) at 0."""
    if not fraction:
        return dataset, None
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    held = max(1, int(round(fraction * len(dataset))))
    return Subset(dataset, sorted(order[held:])), Subset(dataset, sorted(order[:held]))


def cell_checkpointer(
    results_dir: str | Path, cell_hash: str, settings: dict[str, Any], steps_per_epoch: int, pruner: Any
) -> Checkpointer | None:
    """The fine-tune checkpointer of a cell (`trainer.checkpoint_every`), or None when off or when the
    pruner's state cannot round-trip (`Pruner.resumable`; a rerun then starts the fine-tune over)."""
    every = checkpoint_interval(settings.get("checkpoint_every", "epoch"), steps_per_epoch)
    if not every or not pruner.resumable:
        if every:
            log.info("pruner %s cannot resume a fine-tune: no checkpoints", getattr(pruner, "name", "?"))
        return None
    return Checkpointer(
        cell_checkpoint_dir(results_dir, cell_hash), every, bool(settings.get("keep_checkpoints", False))
    )


def _metric_summary(per_epoch: list[dict[str, Any]], split: str, metric: str) -> tuple[float | None, float | None]:
    values = [e[split][metric] for e in per_epoch if split in e and metric in e[split]]
    return (values[-1], max(values)) if values else (None, None)


@sigterm_raises()  # SIGTERM -> CellInterrupted, recorded as interrupted like Ctrl-C
def run_cell(
    spec: CellSpec,
    results_dir: str | Path,
    force: bool = False,
    experiment: str | None = None,
    progress: bool = True,
    export: bool = False,
) -> dict[str, Any]:
    """Run one cell unless its complete record exists (then return that record)."""
    path = record_path(results_dir, spec.cell_hash)
    corrupt = set_aside_corrupt(path)
    if corrupt is not None:
        log.warning(
            "cell %s: %s was no record (not a JSON object): moved to %s, the cell reruns",
            spec.cell_hash,
            path,
            corrupt.name,
        )
    if not force and is_complete(path):
        log.info("cell %s already complete: %s (force=true reruns it)", spec.cell_hash, path)
        record = load_record(path) or {}
        if experiment and experiment not in record.get("experiments", []):
            # the same cell serves several tables (dense rows, Table IV's default SEVEN-pre): tag, don't rerun
            record["experiments"] = [*record.get("experiments", []), experiment]
            write_record(path, record)
        return record
    settings = spec.trainer
    device = resolve_device(settings["device"])
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "status": "failed",
        "error": None,
        "failed_at_step": None,
        "cell_hash": spec.cell_hash,
        "experiment": experiment,
        "experiments": [experiment] if experiment else [],
        "spec": spec.to_dict(),
        "metrics": {},
        "sparsity": {"target": spec.sparsity},
        "timing": {},
        "pruner": {},
        "env": environment(str(device)),
        "warnings": [],
        "created_at": now_iso(),
    }
    started = time.perf_counter()
    counted: CountedLoader | None = None
    try:
        seed_everything(spec.seed)
        task = TASKS.get(spec.task["name"])
        info = task.info_for(spec.task, data_root())
        bundle = MODELS.get(spec.model["name"]).build(spec.model, info, device)
        data = task.load(spec.task, data_root(), bundle)
        record["model_info"], record["data_info"] = bundle.info, {k: v for k, v in data.info.items() if k != "warnings"}
        record["warnings"] += list(data.info.get("warnings", []))
        pruner = spec.take_pruner()
        train_set, holdout_set = holdout_split(data.train, pruner.holdout_fraction, spec.seed)
        if holdout_set is not None:
            record["data_info"]["holdout"] = {"fraction": pruner.holdout_fraction, "examples": len(holdout_set)}

        train_loader = DataLoader(
            train_set,
            batch_size=int(settings["batch_size"]),
            shuffle=True,
            collate_fn=data.collate,
            generator=torch.Generator().manual_seed(spec.seed),
            num_workers=settings["num_workers"],
        )
        score_loader = DataLoader(
            train_set,
            batch_size=int(settings["batch_size"]),
            shuffle=True,
            collate_fn=data.collate,
            generator=torch.Generator().manual_seed(spec.seed + 1),
        )
        eval_loaders = {
            split: DataLoader(ds, batch_size=int(settings["eval_batch_size"]), shuffle=False, collate_fn=data.collate)
            for split, ds in data.evals.items()
        }
        total_steps = int(settings["epochs"]) * len(train_loader)
        if settings.get("max_steps"):
            total_steps = min(total_steps, int(settings["max_steps"]))

        bundle.prunable.update(pruner.prunable_extra(bundle.model))  # e.g. ID's word embeddings; {} for others
        ctx = PruneContext(
            bundle.model,
            bundle.prunable,
            endless(score_loader, device),
            info.num_labels,
            total_steps,
            spec.seed,
            device,
            progress=progress,
            settings=dict(settings),
            steps_per_epoch=len(train_loader),
            artifacts=ArtifactStore(results_dir),
            identity={"model": spec.model, "task": spec.task, "seed": spec.seed}
            | ({"holdout": pruner.holdout_fraction} if holdout_set is not None else {}),
            stream=lambda seed: endless(
                DataLoader(
                    train_set,
                    batch_size=int(settings["batch_size"]),
                    shuffle=True,
                    collate_fn=data.collate,
                    generator=torch.Generator().manual_seed(seed),
                ),
                device,
            ),
            tokenizer=bundle.tokenizer,
        )
        if holdout_set is not None:
            holdout_loader = DataLoader(
                holdout_set, batch_size=int(settings["eval_batch_size"]), shuffle=False, collate_fn=data.collate
            )
            ctx.holdout_score = lambda: evaluate(
                bundle.model, {"holdout": holdout_loader}, data.metric, device, info.num_labels
            )["holdout"][info.reported_metric]

        t0 = time.perf_counter()
        pruner.prepare(ctx)
        apply_masks_(bundle.prunable, pruner.masks)
        record["timing"]["prune_seconds"] = time.perf_counter() - t0
        if pruner.timing == "pre":
            record["sparsity"]["after_pruning"] = achieved_sparsity(bundle.prunable, pruner.masks)[0]

        def run_eval() -> dict[str, dict[str, float]]:
            return evaluate(bundle.model, eval_loaders, data.metric, device, info.num_labels)

        counted = CountedLoader(train_loader)
        checkpointer = cell_checkpointer(results_dir, spec.cell_hash, settings, len(train_loader), pruner)
        if pruner.fine_tune:
            result = fit(ctx, pruner, counted, settings, run_eval, progress=progress, checkpointer=checkpointer)
        else:  # the pruner's model is reported as it is (Lottery Pools' interpolated ticket)
            result = FitResult(per_epoch=[{"epoch": 0, "step": 0, **run_eval()}])
        record["timing"].update(train_seconds=result.seconds, eval_seconds=result.eval_seconds, steps=result.steps)

        split = data.info.get("reported_split") or next(iter(data.evals))
        last, best = _metric_summary(result.per_epoch, split, info.reported_metric)
        record["metrics"] = {
            "per_epoch": result.per_epoch,
            "reported_split": split,
            "reported_metric": info.reported_metric,
            "reported_value": last,
            "best_value": best,
            "epoch_reported": "last",
        }
        overall, per_layer = achieved_sparsity(bundle.prunable, pruner.masks)
        record["sparsity"].update(
            achieved=overall,
            per_layer=per_layer,
            prunable_weights=sum(p.numel() for p in bundle.prunable.values()),
            pruned_but_nonzero=pruned_but_nonzero(bundle.prunable, pruner.masks),
        )
        # a structured pruner empties whole rows by design: only its near-empty tensors are collapse
        dead = None if getattr(pruner, "structured", False) else dead_output_units(bundle.prunable, pruner.masks)
        for warning in collapse_warnings(per_layer, dead):
            log.warning("cell %s: %s", spec.cell_hash, warning)
            record["warnings"].append(warning)
        summary = pruner.summary()
        record["timing"]["steps_before_finetune"] = pruner.steps_before_finetune()
        record["warnings"] += summary.pop("warnings", [])
        record["pruner"] = summary
        if export:  # `export=true`: the pruned model, really smaller, kept in results_dir/exports/<cell-hash>/
            from seven_bench.export import export_cell

            record["export"] = export_cell(bundle, pruner, results_dir, spec.cell_hash)
        record["checkpoints"] = checkpointer.summary() if checkpointer is not None else None
        record["status"] = "ok"
        if checkpointer is not None:
            checkpointer.finish()
    except NanLossError as err:
        record.update(error=str(err), failed_at_step=err.step)
    except (KeyboardInterrupt, CellInterrupted) as err:  # resume reruns it: only "ok" is complete
        step = counted.drawn - 1 if counted is not None and counted.drawn else None
        record.update(status="interrupted", error=f"{type(err).__name__}: {err}".rstrip(": "), failed_at_step=step)
        record["timing"]["total_seconds"] = time.perf_counter() - started
        write_record(path, record)
        raise
    except Exception as err:  # a failed cell is recorded and the sweep goes on
        record["error"] = f"{type(err).__name__}: {err}".splitlines()[0]
        log.exception("cell %s failed", spec.cell_hash)
    record["timing"]["total_seconds"] = time.perf_counter() - started
    write_record(path, record)
    return record
