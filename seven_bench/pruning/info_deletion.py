"""Information Deletion (Gordon, Duh & Andrews 2020, `mitchellgordon95/bert-prune`; ALGORITHMS.md 4.13, 7.5, 7.9):
gradual magnitude pruning during continued masked-language-model pre-training, then the task fine-tune with the
mask fixed. Timing `pre`: `prepare` runs the pre-training; run.py's fine-tune then trains the task under the mask.

As the tapes run it (`pretraining.tape`):

1. burn-in: `burn_in_steps` MLM steps unpruned (15k), its own optimizer and schedule;
2. pruning run: `steps` MLM steps (100k) from a fresh optimizer; the TF `model_pruning` cubic sparsity
   s_t = s (1 - (1 - t / ramp_steps)^3) (initial sparsity 0, `sparsity_function_end_step` = ramp_steps = 10k),
   the mask recut every `update_frequency` (10) steps among the kept weights, with one threshold per tensor (TF's
   default: `global_pruning` is unset), word embeddings included (`apply_mask` in `modeling.py`). This is the
   suite's GMP (`GmpTiming` + magnitude on a `DynPruner`) with t_i = 0 and t_f = steps - ramp_steps.

The pruned, recovered encoder does not depend on the task unless its text is the task's: it is stored once as an
artifact (results_dir/artifacts/info_deletion-<hash>/) keyed by model, sparsity, corpus, settings and seed, and
every later cell with the same key (another task of a sweep, a rerun) loads it instead of training. The global
random state is forked around the pre-training, so a cell's fine-tune is the same whether it made or reused it.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import torch
from torch import nn

from seven_bench.artifacts import key_hash, producing
from seven_bench.errors import UserError
from seven_bench.models.text import word_embeddings
from seven_bench.pruning.base import PruneContext, Pruner
from seven_bench.pruning.criteria import Magnitude
from seven_bench.pruning.dyn import DynPruner
from seven_bench.pruning.mlm import (
    Corpus,
    MlmModel,
    bert_encoder,
    corpus_rows,
    mlm_batches,
    mlm_head,
    train_mlm,
)
from seven_bench.pruning.plans import GmpTiming
from seven_bench.pruning.selection import check_selection, resolve_count_rule

ARTIFACT_KIND = "info_deletion"
# TF model_pruning keeps round(n(1 - s)) weights (then `>=` the k-th |W|: ties aside, exactly that many).
ORIGINAL_COUNT_RULE = "exact"


def _int(cfg: Mapping[str, Any], key: str, low: int) -> int:
    value = cfg.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"pruner.{key}={value} is invalid: pass pruner.{key}=<an integer >= {low}>")
    return value


def _float(cfg: Mapping[str, Any], key: str, low: float, high: float | None = None) -> float:
    value = cfg.get(key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low < value
    if not ok or (high is not None and value > high):
        span = f"> {low}" if high is None else f"in ({low}, {high}]"
        raise UserError(f"pruner.{key}={value} is invalid: pass pruner.{key}=<a number {span}>")
    return float(value)


def magnitude_gmp(
    density: float, steps: int, ramp_steps: int, update_frequency: int, selection: str, count_rule: str
) -> DynPruner:
    """TF model_pruning's gradual magnitude pruning as the suite's GMP: `GmpTiming` counts t_i and t_f in units
    of warmup_steps = 1, so t_i = 0 (the cubic starts at the run's first step, initial sparsity 0) and
    t_f = steps - ramp_steps (target reached at t = ramp_steps, held after); after optimizer step s the mask
    keeps r(s + 1) = d + (1 - d)(1 - (s + 1)/ramp_steps)^3, recut when (s + 1) % update_frequency == 0."""
    plan = GmpTiming(1, 0, steps - ramp_steps, density, update_frequency, name=ARTIFACT_KIND)
    return DynPruner(ARTIFACT_KIND, density, plan, Magnitude(), selection=selection, count_rule=count_rule)


def _cuda_index(device: torch.device) -> list[int]:
    """The CUDA device whose random state is forked with the CPU's (none on other devices)."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


class InfoDeletion(Pruner):
    name = "info_deletion"
    timing = "pre"

    def __init__(self, cfg: Mapping[str, Any], density: float, seed: int):
        super().__init__(density)
        self.seed = int(seed)
        self.corpus = Corpus.parse(str(cfg.get("corpus", "task")))
        self.burn_in_steps = _int(cfg, "burn_in_steps", 0)
        self.steps = _int(cfg, "steps", 1)
        self.ramp_steps = _int(cfg, "ramp_steps", 1)
        if self.ramp_steps > self.steps:
            raise UserError(
                f"pruner.ramp_steps={self.ramp_steps} exceeds pruner.steps={self.steps}: the cubic ramp must end "
                "inside the pruning run"
            )
        self.update_frequency = _int(cfg, "update_frequency", 1)
        self.selection = check_selection(str(cfg.get("selection", "layer")), ("layer", "global"))
        self.count_rule = (
            ORIGINAL_COUNT_RULE
            if cfg.get("count_rule") in (None, "original")
            else resolve_count_rule(cfg.get("count_rule"), ARTIFACT_KIND)
        )
        self.prune_embeddings = bool(cfg.get("prune_embeddings", True))
        self.mlm = {
            "batch_size": _int(cfg, "mlm_batch_size", 1),
            "max_length": _int(cfg, "mlm_max_length", 8),
            "probability": _float(cfg, "mlm_probability", 0.0, 1.0),
        }
        self.optim = {
            "optimizer": "adamw",
            "lr": _float(cfg, "mlm_lr", 0.0),
            "weight_decay": float(cfg.get("mlm_weight_decay") or 0.0),
            "betas": [0.9, 0.999],
            "lr_schedule": "linear",
            "warmup_steps": _int(cfg, "mlm_warmup_steps", 0),
            "max_grad_norm": cfg.get("mlm_max_grad_norm"),
        }
        self.facts: dict[str, Any] = {}
        self.warnings: list[str] = []

    # ------------------------------------------------------------------------------------- prunable set
    def prunable_extra(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """Gordon's code masks the word embeddings too (`apply_mask` on the embedding table); they join the
        cell's prunable set, so the fine-tune keeps them masked and the record counts them."""
        return word_embeddings(model) if self.prune_embeddings else {}

    def settings(self) -> dict[str, Any]:
        """Every value that shapes the pre-trained model (the artifact key's `settings`)."""
        return {
            "burn_in_steps": self.burn_in_steps,
            "steps": self.steps,
            "ramp_steps": self.ramp_steps,
            "update_frequency": self.update_frequency,
            "selection": self.selection,
            "count_rule": self.count_rule,
            "prune_embeddings": self.prune_embeddings,
            "mlm": self.mlm,
            "optimizer": self.optim,
        }

    def artifact_key(self, ctx: PruneContext) -> dict[str, Any]:
        """Model (and its pruned tensors), sparsity, corpus, settings, seed; the task only when the text is the
        task's own sentences (then also the batch size of the stream the rows are drawn from, which orders them)."""
        corpus = self.corpus.identity()
        if self.corpus.kind == "task":
            corpus.update(task=ctx.identity.get("task"), stream_batch_size=ctx.settings.get("batch_size"))
        return {
            "model": ctx.identity.get("model"),
            # which tensors are pruned (a QA model has no pooler): a classification cell's artifact holds a
            # pooler, and under a global threshold the set shapes every cut
            "prunable": {"tensors": len(ctx.prunable), "names": key_hash({"names": sorted(ctx.prunable)})},
            "sparsity": round(1.0 - self.density, 10),
            "corpus": corpus,
            "settings": self.settings(),
            "seed": self.seed,
        }

    # ------------------------------------------------------------------------------------- prepare
    def prepare(self, ctx: PruneContext) -> None:
        encoder = bert_encoder(ctx.model)
        if self.prune_embeddings and not set(word_embeddings(ctx.model)) <= set(ctx.prunable):
            raise UserError("info_deletion prunes the word embeddings but the cell's prunable set lacks them")
        key = self.artifact_key(ctx)
        artifact = ctx.artifacts.get(ARTIFACT_KIND, key) if ctx.artifacts is not None else None
        with producing(artifact):
            if artifact is not None and artifact.complete:
                self._load(ctx, artifact)
                return
            started = time.perf_counter()
            with torch.random.fork_rng(devices=_cuda_index(ctx.device)):
                masks, trajectory = self._pretrain(ctx, encoder)
            self.masks = masks
            self.facts["seconds"] = time.perf_counter() - started
            self.facts["trajectory"] = trajectory
            self.facts["warnings"] = list(self.warnings)
            self.facts["artifact"] = {"made": True, **(artifact.describe() if artifact is not None else {})}
            if artifact is not None:
                prefix = self._prefix(ctx.model, encoder)
                artifact.save("encoder.pt", {f"{prefix}{n}": p.detach().cpu() for n, p in encoder.named_parameters()})
                artifact.save("masks.pt", {n: m.cpu() for n, m in masks.items()})
                artifact.finish({"facts": {k: v for k, v in self.facts.items() if k != "artifact"}})
                self.facts["artifact"]["complete"] = True

    @staticmethod
    def _prefix(model: nn.Module, encoder: nn.Module) -> str:
        for name, module in model.named_modules():
            if module is encoder:
                return f"{name}." if name else ""
        raise UserError("the encoder is not part of the cell's model")

    def _pretrain(self, ctx: PruneContext, encoder: nn.Module) -> tuple[dict[str, torch.Tensor], list[Any]]:
        if ctx.tokenizer is None:
            raise UserError("info_deletion needs the model's tokenizer in the pruning context (text models only)")
        torch.manual_seed(self.seed)
        head = mlm_head(ctx.model)
        model = MlmModel(encoder, head.module.to(ctx.device))
        self.facts["mlm_head"] = "pretrained" if head.pretrained else "fresh, decoder tied to the word embeddings"
        if not head.pretrained:
            self.warnings.append(
                f"deviation: the model ({head.source}) comes without a pretrained MLM head: a freshly initialised "
                "BERT head (transform + bias; decoder tied to the word embeddings) is trained with the encoder"
            )
        rows = corpus_rows(self.corpus, ctx.batches, ctx.tokenizer, self.mlm["max_length"], self.seed)
        batches = mlm_batches(
            rows, ctx.tokenizer, self.mlm["batch_size"], self.mlm["probability"], self.seed, ctx.device
        )
        burn_in = train_mlm(model, batches, self.burn_in_steps, self.optim, progress=ctx.progress, desc="mlm burn-in")

        # The pruning run: GMP on the cell's prunable set, its cubic ramp over the first ramp_steps.
        gmp = magnitude_gmp(
            self.density, self.steps, self.ramp_steps, self.update_frequency, self.selection, self.count_rule
        )
        gmp_ctx = PruneContext(model, ctx.prunable, iter(()), 0, self.steps, self.seed, ctx.device)
        gmp.prepare(gmp_ctx)
        self.warnings += gmp.warnings

        def after_step(step: int) -> None:
            gmp.after_optimizer_step(step, gmp_ctx)
            with torch.no_grad():
                for name, param in ctx.prunable.items():
                    param.mul_(gmp.masks[name])  # type: ignore[index]

        pruning = train_mlm(model, batches, self.steps, self.optim, after_step, ctx.progress, desc="mlm pruning")
        self.facts["phases"] = {"burn_in": burn_in.summary(), "pruning": pruning.summary()}
        self.facts["mask_updates"] = gmp.mask_updates
        self.facts["plan"] = gmp.plan.summary().get("plan")
        assert gmp.masks is not None
        return {n: m.detach().clone() for n, m in gmp.masks.items()}, gmp.trajectory

    def _load(self, ctx: PruneContext, artifact: Any) -> None:
        """Load the stored encoder and masks into the cell's model (its classifier head stays the fresh one)."""
        state, masks = artifact.load("encoder.pt"), artifact.load("masks.pt")
        params = dict(ctx.model.named_parameters())
        missing = [n for n in state if n not in params] + [n for n in ctx.prunable if n not in masks]
        if missing:
            raise UserError(f"artifact {artifact.dir} does not fit this model (e.g. {missing[0]}): delete it")
        with torch.no_grad():
            for name, tensor in state.items():
                params[name].copy_(tensor.to(params[name].device))
        self.masks = {n: masks[n].to(ctx.prunable[n].device) for n in ctx.prunable}
        done = dict(artifact.load("done.json").get("facts", {}))
        self.warnings = list(done.pop("warnings", []))
        self.facts.update(done)
        self.facts["artifact"] = {"made": False, **artifact.describe()}

    def steps_before_finetune(self) -> int:
        """Both masked-LM phases: the burn-in and the pruning run."""
        return self.burn_in_steps + self.steps

    def summary(self) -> dict[str, Any]:
        facts = dict(self.facts)
        return {
            "variant": "original",
            "corpus": self.corpus.identity(),
            **self.settings(),
            "schedule": "TF model_pruning cubic: s_t = s(1 - (1 - t/ramp_steps)^3), recut every update_frequency steps",
            "objective": "MLM only (no next-sentence loss: the corpus is not split into documents)",
            "finetune": "the cell's trainer settings, mask fixed (Gordon: 6 epochs, best of lr {2,3,4,5}e-5)",
            "trajectory": facts.pop("trajectory", []),
            **facts,
            "warnings": list(self.warnings),
        }


def build_info_deletion(cfg: Mapping[str, Any], density: float, seed: int) -> InfoDeletion:
    return InfoDeletion(cfg, density, seed)
