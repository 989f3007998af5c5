"""Config -> CellSpec: validated, fully resolved, hashed. Every check here runs before any model or
dataset loads, so bad input stops at once with one line that says what to do."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from seven_bench import validate
from seven_bench.errors import UserError
from seven_bench.recipes import resolve_trainer

# Keys of a pruner config that steer resolution but are not hyperparameters of the cell.
_PRUNER_META = ("by_task", "paper_by_task", "trainer", "hparams_source_doc")
# Keys that do not change what a cell computes, so they stay out of its hash.
# `overrides` only names which of the (hashed) settings the user typed, so records written before it existed
# keep their hash.
_UNHASHED_TRAINER = ("device", "num_workers", "checkpoint_every", "keep_checkpoints", "overrides")


def cell_identity(spec: Mapping[str, Any]) -> dict[str, Any]:
    """What decides a cell's result: the spec without the trainer keys that only say where or how often it
    saves and runs. The cell hash and the tables' grouping of records both use it, so that records written
    before such a key existed (or with another checkpoint cadence) still count as the same configuration."""
    ident = copy.deepcopy(dict(spec))
    ident["trainer"] = {k: v for k, v in (ident.get("trainer") or {}).items() if k not in _UNHASHED_TRAINER}
    return ident


@dataclass(frozen=True)
class CellSpec:
    model: dict[str, Any]
    task: dict[str, Any]
    pruner: dict[str, Any]
    sparsity: float
    seed: int
    trainer: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(asdict(self))

    @property
    def cell_hash(self) -> str:
        blob = json.dumps(cell_identity(self.to_dict()), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def take_pruner(self) -> Any:
        """The pruner `build_spec` built (and validated) for this cell, handed over once; a spec run again
        (or made by hand) builds a fresh one, since a pruner holds the state of one run."""
        from seven_bench.pruning.registry import PRUNERS

        built = self.__dict__.pop("_built_pruner", None)
        if built is None:
            built = PRUNERS.get(self.pruner["name"]).build(self.pruner, self.density, self.seed)
        return built

    @property
    def density(self) -> float:
        return 1.0 - self.sparsity


def _plain(cfg: Any) -> dict[str, Any]:
    """OmegaConf node or mapping -> plain dict (resolving interpolations)."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover
        pass
    return copy.deepcopy(dict(cfg))


def resolve_pruner(cfg: dict[str, Any], task: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Fill the pruner's null hyperparameters from its per-task table (e.g. Table B1 for seven_pre;
    `default` row for tasks the table does not list). `hparams_source=paper` applies the paper's values
    where the authors' code differs. Returns (hyperparameters, the pruner's own trainer settings)."""
    row = dict((cfg.get("by_task") or {}).get(task) or (cfg.get("by_task") or {}).get("default") or {})
    if cfg.get("hparams_source", "code") == "paper":
        row.update((cfg.get("paper_by_task") or {}).get(task) or {})
    trainer = {**(cfg.get("trainer") or {}), **row.pop("trainer", {})} or None
    out = {k: v for k, v in cfg.items() if k not in _PRUNER_META}
    for key, value in row.items():
        if out.get(key) is None:
            out[key] = value
    missing = [k for k, v in out.items() if v is None]
    if missing:
        raise UserError(
            f"pruner={cfg['name']} has no value for {', '.join(missing)} on task={task}: "
            f"pass pruner.{missing[0]}=<value>"
        )
    return out, trainer


def build_spec(cfg: Mapping[str, Any]) -> CellSpec:
    """Validate names, ranges and combinations, resolve defaults, and check that data and weights can
    be had. Loads nothing heavy."""
    from seven_bench.models import MODELS
    from seven_bench.pruning.registry import PRUNERS
    from seven_bench.sources import data_root, fingerprint_files
    from seven_bench.tasks import TASKS

    raw = _plain(cfg)
    validate.drop_swept_options(raw)
    validate.check_keys(raw)
    model_cfg, task_cfg, pruner_cfg = raw["model"], raw["task"], raw["pruner"]
    model_entry = MODELS.get(model_cfg["name"])
    task_entry = TASKS.get(task_cfg["name"])
    pruner_entry = PRUNERS.get(pruner_cfg["name"])

    try:
        sparsity = float(raw.get("sparsity", 0.0))
    except (TypeError, ValueError):
        raise UserError(
            f"sparsity={raw.get('sparsity')!r} is not a number: pass the fraction of prunable weights to "
            "remove, e.g. sparsity=0.6"
        ) from None
    if not 0.0 <= sparsity < 1.0:
        raise UserError(
            f"sparsity={sparsity} is outside [0, 1): it is the fraction of prunable weights removed, e.g. sparsity=0.6"
        )
    if pruner_entry.timing == "none":
        sparsity = 0.0  # dense ignores sparsity, so a sweep's dense cells share one hash and run once
    if model_entry.modality != task_entry.info.modality:
        usable = ", ".join(n for n in MODELS if MODELS.get(n).modality == task_entry.info.modality)
        raise UserError(
            f"model={model_entry.name} is a {model_entry.modality} model and cannot run task={task_entry.info.name} "
            f"({task_entry.info.modality}): use model={usable}"
        )
    if model_entry.modality not in pruner_entry.modalities:
        raise UserError(
            f"pruner={pruner_entry.name} prunes {' or '.join(pruner_entry.modalities)} models only, not "
            f"model={model_entry.name}"
        )
    validate.check_values("", raw, validate.TOP)
    validate.check_model(model_cfg)
    validate.check_values("task.", task_cfg, validate.TASK)
    seed = int(raw.get("seed", 0))

    pruner, pruner_trainer = resolve_pruner(pruner_cfg, task_entry.info.name)
    if pruner.get("selection") != "nm":  # N:M sizes mean nothing otherwise: they stay out of the hash
        pruner.pop("n", None)
        pruner.pop("m", None)
    pruner["timing"] = pruner_entry.timing
    built = pruner_entry.build(pruner, 1.0 - sparsity, seed)  # constructors check and store: bad values stop here
    trainer = resolve_trainer(
        raw.get("trainer") or {},
        model_entry.modality,
        pruner_entry.timing,
        pruner_trainer,
        pruner_entry.name,
        task_entry.info.name,
    )
    user_trainer = raw.get("trainer") or {}
    trainer["device"] = user_trainer.get("device", "auto")
    trainer["num_workers"] = user_trainer.get("num_workers") or 0
    trainer["checkpoint_every"] = user_trainer.get("checkpoint_every", "epoch")
    trainer["keep_checkpoints"] = user_trainer.get("keep_checkpoints", False)
    validate.check_trainer(trainer)
    if "results_dir" in raw:
        validate.check_results_dir(str(raw["results_dir"]))

    model_entry.check_available(model_cfg)
    task_entry.check_available(task_cfg, data_root())
    if task_entry.local_files is not None:  # hub data keeps no fingerprint, so those cells keep their hash
        files = task_entry.local_files(task_cfg, data_root())
        if files:
            task_cfg["data_fingerprint"] = fingerprint_files(files, data_root())
    spec = CellSpec(model=model_cfg, task=task_cfg, pruner=pruner, sparsity=sparsity, seed=seed, trainer=trainer)
    object.__setattr__(spec, "_built_pruner", built)  # run_cell takes it: the pruner is built once per cell
    return spec
