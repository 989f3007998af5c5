"""What the trainer sees of a pruner (the timing part), and the context a pruner works in."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from seven_bench.errors import UserError
from seven_bench.pruning.ckernels import mask_mul_

Masks = dict[str, torch.Tensor]


# Batch keys that are targets, never model inputs: a class id or score ("labels"), or an answer span.
SPAN_TARGETS = ("start_positions", "end_positions")
TARGET_KEYS = ("labels", *SPAN_TARGETS)


def task_loss(logits: torch.Tensor, labels: torch.Tensor, num_labels: int, temperature: float = 1.0) -> torch.Tensor:
    """Cross-entropy on logits / temperature (GraSP uses T = 200), or MSE for regression (STS-B),
    where a temperature has no meaning. Span logits (batch, tokens, 2) with (batch, 2) start/end targets
    (extractive QA) take the mean of the start and end cross-entropies, as the HF QA models' own loss."""
    if logits.dim() == 3 and labels.dim() == 2:
        scaled = logits.float() / temperature
        return (F.cross_entropy(scaled[..., 0], labels[:, 0]) + F.cross_entropy(scaled[..., 1], labels[:, 1])) / 2
    if num_labels == 1:
        return F.mse_loss(logits.squeeze(-1).float(), labels.float())
    return F.cross_entropy(logits.float() / temperature, labels)


def forward_logits(model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """The model's logits for a batch (targets left out of its inputs). A question-answering model's start
    and end logits come stacked on a last axis, (batch, tokens, 2), as its qa_outputs layer makes them."""
    output = model(**{k: v for k, v in batch.items() if k not in TARGET_KEYS})
    if getattr(output, "start_logits", None) is not None:
        return torch.stack((output.start_logits, output.end_logits), dim=-1)
    return output.logits


def batch_targets(batch: dict[str, Any]) -> torch.Tensor:
    """What task_loss compares the logits with: the labels, or the (batch, 2) start/end positions."""
    if "labels" in batch:
        return batch["labels"]
    return torch.stack([batch[key] for key in SPAN_TARGETS], dim=-1)


def batch_rows(batch: dict[str, Any]) -> int:
    return int(batch_targets(batch).shape[0])


@contextmanager
def double_backward_kernels() -> Iterator[None]:
    """Attention kernels that have a second derivative. The fused scaled-dot-product kernels (flash,
    memory-efficient) have none on CPU or CUDA; train-mode dropout happens to route around them, eval mode
    does not. Every create_graph pass (GraSP's Hessian-gradient product, second-order regularisers) runs
    its forward under this."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        yield


def owning_modules(model: nn.Module, prunable: dict[str, nn.Parameter]) -> dict[str, tuple[nn.Module, str]]:
    """name -> (module, attribute) that holds each prunable Parameter directly."""
    by_id = {id(p): n for n, p in prunable.items()}
    owners: dict[str, tuple[nn.Module, str]] = {}
    for module in model.modules():
        for attr, param in module._parameters.items():
            if param is not None and id(param) in by_id and by_id[id(param)] not in owners:
                owners[by_id[id(param)]] = (module, attr)
    missing = [n for n in prunable if n not in owners]
    if missing:
        raise UserError(f"prunable tensors not owned by any module of the model: {', '.join(missing[:3])}")
    return owners


@dataclass
class PruneContext:
    """Everything a pruner may use: the model, its prunable weights, a stream of training batches
    (already on the device), and the planned number of optimizer steps (for dyn schedules)."""

    model: nn.Module
    prunable: dict[str, nn.Parameter]
    batches: Iterator[dict[str, Any]]
    num_labels: int
    total_steps: int
    seed: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # The current batch's task loss (with its graph), set by the trainer just before `extra_loss`; a
    # regulariser built from the task gradient (SEVEN repo's soft movement, create_graph) needs it.
    step_loss: torch.Tensor | None = None
    progress: bool = False  # show progress bars for long pruning phases (pre-pruning's N scoring steps)
    # For pruners that train inside `prepare` (lottery rounds, early-bird search, structured searches):
    # the cell's resolved trainer settings, the optimizer steps in one epoch of the train loader, where
    # shared artifacts live (None: no reuse, e.g. in unit tests), and what identifies the cell's model,
    # data and seed in an artifact key (everything but the pruner and the sparsity).
    settings: dict[str, Any] = field(default_factory=dict)
    steps_per_epoch: int = 0
    artifacts: Any = None  # seven_bench.artifacts.ArtifactStore | None
    identity: dict[str, Any] = field(default_factory=dict)
    # A fresh endless stream of training batches shuffled by the given seed (None: use `batches`): a round
    # that draws its own stream is the same whether earlier rounds ran in this process or were loaded.
    stream: Callable[[int], Iterator[dict[str, Any]]] | None = None
    # The task's reported metric of the current model on the held-out slice of the training set, when the
    # pruner asked for one (`Pruner.holdout_fraction`); never the dev set a table reports.
    holdout_score: Callable[[], float] | None = None
    tokenizer: Any = None  # text models: the HF tokenizer (a pruner that reads text of its own, e.g. MLM)

    def loss(self, batch: dict[str, Any], temperature: float = 1.0) -> torch.Tensor:
        return task_loss(forward_logits(self.model, batch), batch_targets(batch), self.num_labels, temperature)

    def mean_gradients(self, batches: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """dL/dW of the mean loss over `batches`, at the current (masked) weights."""
        self.model.zero_grad(set_to_none=True)
        for batch in batches:
            (self.loss(batch) / len(batches)).backward()
        return {n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach() for n, p in self.prunable.items()}

    def signal(self, name: str, batches: list[dict[str, Any]], **options: Any) -> dict[str, torch.Tensor]:
        """A criterion's input by name, so a new criterion asks for a signal instead of adding a branch:
        `grad` (mean gradient of the batches' losses at W*M), `hessian_grad` (GraSP's Hg; option
        temperature), `activation_norm` (||X_j||_2 per input feature of each weight; option names)."""
        if name == "grad":
            return self.mean_gradients(batches)
        if name == "hessian_grad":
            return self.hessian_gradient(batches, float(options.get("temperature", 1.0)))
        if name == "activation_norm":
            return self.activation_norms(batches, options.get("names"))
        raise ValueError(f"unknown signal {name!r}")

    @torch.no_grad()
    def activation_norms(
        self, batches: list[dict[str, Any]], names: list[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """||X_j||_2 over every calibration token, per input feature j of each prunable weight (Wanda's
        `scaler_row`, up to the constant 1/nsamples no ranking sees). Padding positions are left out (an
        LLM's calibration text has none; a BERT batch does). One forward pass per batch, hooks on the
        modules that own the weights (an nn.Linear, or CLIP's MultiheadAttention for in_proj_weight)."""
        owners = owning_modules(self.model, {n: self.prunable[n] for n in (names or list(self.prunable))})
        sums = {n: torch.zeros(self.prunable[n].shape[-1], device=self.prunable[n].device) for n in owners}
        mask: list[torch.Tensor | None] = [None]

        def hook_for(name: str) -> Callable[..., None]:
            def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
                x = args[0] if args else next(iter(kwargs.values()))
                keep = mask[0]
                if x.dim() == 3 and keep is not None and tuple(keep.shape) == tuple(x.shape[:2]):
                    x = x[keep.bool()]
                sums[name] += x.reshape(-1, x.shape[-1]).float().pow(2).sum(0)

            return hook

        handles = [module.register_forward_pre_hook(hook_for(n), with_kwargs=True) for n, (module, _) in owners.items()]
        try:
            for batch in batches:
                mask[0] = batch.get("attention_mask")
                forward_logits(self.model, batch)
        finally:
            for handle in handles:
                handle.remove()
        return {n: s.sqrt() for n, s in sums.items()}

    def hessian_gradient(self, batches: list[dict[str, Any]], temperature: float) -> dict[str, torch.Tensor]:
        """H g for GraSP, as in alecwangcq/GraSP: g over the sample (first pass), then d/dW (g_stopgrad .
        dL/dW) accumulated over the same sub-batches (second pass).

        Every example weighs the same, as in the original (which splits its class-balanced sample into
        two equal halves): each sub-batch's mean loss is weighted by its share of the rows, so a 4-row
        remainder beside a 16-row batch does not count each of its rows four times. (The original's sum of
        two half-means is this times a constant, which no ranking sees.)"""
        names = list(self.prunable)
        params = [self.prunable[n] for n in names]
        grads = [torch.zeros_like(p) for p in params]
        total = sum(batch_rows(b) for b in batches)
        shares = [batch_rows(b) / total for b in batches]
        for batch, share in zip(batches, shares):
            for acc, g in zip(grads, torch.autograd.grad(self.loss(batch, temperature) * share, params)):
                acc.add_(g)
        self.model.zero_grad(set_to_none=True)
        with double_backward_kernels():
            for batch, share in zip(batches, shares):
                g_graph = torch.autograd.grad(self.loss(batch, temperature) * share, params, create_graph=True)
                z = sum((g_fixed * g).sum() for g_fixed, g in zip(grads, g_graph))
                z.backward()
        out = {
            n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().clone() for n, p in zip(names, params)
        }
        self.model.zero_grad(set_to_none=True)
        return out


class Pruner:
    """Base: a pruner with no effect (dense). Subclasses set `timing` and override the hooks."""

    name = "dense"
    timing = "none"  # "pre" | "dyn" | "none"
    second_order = (
        False  # extra_loss differentiates through a gradient: the trainer's forward needs double_backward_kernels
    )

    # False: the cell reports the model as `prepare` leaves it, without fine-tuning (Lottery Pools' ticket).
    fine_tune = True
    # > 0: this share of the training set is held out of training and scored by `ctx.holdout_score`.
    holdout_fraction = 0.0
    # False: the pruner's fine-tuning state does not round-trip through `state_dict`, so no checkpoint is written.
    resumable = True

    def __init__(self, density: float):
        self.density = density  # the kept fraction (1 - sparsity): the suite's one word for it
        # What the trainer enforces after every optimizer step. None means "nothing to enforce now": a dense
        # cell, a dyn pruner before its first cut, or a regrowing pruner between cuts (PLATON zeroes weights
        # only at its cut steps and lets them train in between, as its code does). A pruner whose mask must
        # hold at every step keeps it set from its first cut on.
        self.masks: Masks | None = None

    def state_dict(self) -> dict[str, Any]:
        """What a fine-tune checkpoint keeps of the pruner. A pre pruner's fine-tuning state is its masks; a
        dyn pruner's is everything it holds but its references into the model (criterion accumulators, plan
        position, masks, trajectory: pruning/state.py). Tensors it trains through `param_groups` are saved
        with the model's weights. A pruner with other needs overrides both hooks."""
        if self.timing == "dyn":
            from seven_bench.pruning.state import capture

            return capture(self)
        return {"masks": None if self.masks is None else {n: m.detach().clone() for n, m in self.masks.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.timing == "dyn":
            from seven_bench.pruning.state import restore

            restore(self, state)
        else:
            self.masks = state["masks"]

    def prunable_extra(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """Tensors this method prunes beyond the model's prunable set (Information Deletion's word
        embeddings); run.py adds them to the cell's set before `prepare`. Default: none."""
        return {}

    def prepare(self, ctx: PruneContext) -> None:
        """Pre pruners decide the mask here; dyn pruners set up their state."""

    def param_groups(self) -> list[dict[str, Any]]:
        """Extra trainable tensors (e.g. learned movement scores) with their own optimizer settings."""
        return []

    def extra_loss(self, ctx: PruneContext) -> torch.Tensor | None:
        """A regulariser added to the task loss (soft movement's L1 on sigmoid scores)."""
        return None

    def after_optimizer_step(self, step: int, ctx: PruneContext) -> None:
        """Called after every optimizer step (0-based `step`) while `.grad` still holds that step's gradient."""

    def summary(self) -> dict[str, Any]:
        """Facts for the run record: which variant ran, schedule trajectory, warnings."""
        return {}

    def steps_before_finetune(self) -> int:
        """Optimizer steps the method took before the cell's fine-tune (a ticket's IMP rounds, a search on the
        task's data, Information Deletion's masked-LM phases), whether they ran in this cell or came from an artifact:
        they are part of the method's cost, and a table that sets methods side by side must show it (the
        record's `timing.steps_before_finetune`). 0 for a method that only scores (SNIP's batch and SEVEN-pre's
        scoring steps update nothing) or that prunes during the fine-tune (`timing.steps` counts those)."""
        return 0


@torch.no_grad()
def apply_masks_(prunable: dict[str, nn.Parameter], masks: Masks | None) -> None:
    """Zero pruned weights in place (no module wrappers, no weight_orig copies); `None` enforces nothing
    (see `Pruner.masks`)."""
    if masks is None:
        return
    for name, param in prunable.items():
        mask_mul_(param, masks[name])


def achieved_sparsity(prunable: dict[str, nn.Parameter], masks: Masks | None) -> tuple[float, dict[str, float]]:
    """Overall and per-tensor fraction of pruned weights (mask False; exact zeros when there is no mask)."""
    per_layer: dict[str, float] = {}
    pruned_total = total = 0
    for name, param in prunable.items():
        pruned = (
            int(torch.count_nonzero(param.detach() == 0))
            if masks is None
            else param.numel() - int(torch.count_nonzero(masks[name]))
        )
        per_layer[name] = pruned / param.numel()
        pruned_total += pruned
        total += param.numel()
    return (pruned_total / total if total else 0.0), per_layer


def kept_fraction(masks: Masks) -> float:
    """Fraction of all masked entries that are kept: the "achieved" side of a schedule trajectory."""
    return sum(int(torch.count_nonzero(m)) for m in masks.values()) / max(1, sum(m.numel() for m in masks.values()))


def step_gradients(prunable: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
    """Each prunable tensor's gradient of the step just taken; zeros for a tensor the loss did not reach."""
    return {n: p.grad if p.grad is not None else torch.zeros_like(p) for n, p in prunable.items()}


COLLAPSE_KEEP = 0.01  # a tensor keeping under 1% of its weights is (near-)collapsed
COLLAPSE_DEAD_UNITS = 0.5  # ... as is one where most output units lose every input


def dead_output_units(prunable: dict[str, nn.Parameter], masks: Masks | None) -> dict[str, float]:
    """Per tensor, the fraction of output units (rows of the weight) left with no input at all."""
    out: dict[str, float] = {}
    for name, param in prunable.items():
        kept = (param.detach() != 0) if masks is None else masks[name]
        rows = kept.reshape(kept.shape[0], -1) if kept.dim() > 1 else kept.reshape(1, -1)
        out[name] = float((~rows.any(dim=1)).float().mean())
    return out


def _collapse_consequence(name: str) -> str:
    """What losing this tensor does to the network: BERT and ViT blocks are residual, so only a tensor
    with no residual path around it (the pooler) cuts the classifier off from the input."""
    if "pooler" in name:
        return (
            "the classifier no longer sees the input (predictions collapse to one class or value); "
            "model.prune_pooler=false keeps the pooler dense"
        )
    if any(key in name for key in ("query", "key")) and "value" not in name:
        return (
            "this layer's attention loses its dependence on the input (near-uniform attention); "
            "the value path still carries it"
        )
    if "in_proj" in name:
        return (
            "this layer's packed q/k/v projection is (nearly) empty; "
            "the residual connection still carries the input past it"
        )
    return "this sublayer's contribution is (nearly) removed; the residual connection still carries the input past it"


def collapse_warnings(per_layer: dict[str, float], dead_units: dict[str, float] | None = None) -> list[str]:
    """One warning per (near-)collapsed tensor: under 1% of its weights kept, or most of its output units
    without any input. A global threshold can empty a layer whose weights sit on a small scale (MiniLM's
    pooler keeps 20 of 147,456 weights under magnitude at 0.5): a chance-level score in the table should
    then be read as layer collapse, not as the method's accuracy. The wording says what that tensor's loss
    does (an emptied query or key does not cut the value path)."""
    warnings = []
    for name, fraction in per_layer.items():
        dead = (dead_units or {}).get(name, 0.0)
        if fraction < 1.0 - COLLAPSE_KEEP and dead <= COLLAPSE_DEAD_UNITS:
            continue
        state = (
            "is fully pruned"
            if fraction >= 1.0
            else f"keeps {100 * (1 - fraction):.3g}% of its weights"
            + (f", {100 * dead:.3g}% of its output units have no input" if dead else "")
        )
        warnings.append(f"{name} {state} (layer collapse): {_collapse_consequence(name)}")
    return warnings


def pruned_but_nonzero(prunable: dict[str, nn.Parameter], masks: Masks | None) -> int:
    """Pruned weights that are not exactly zero: must be 0 after every optimizer step."""
    if masks is None:
        return 0
    return sum(int(torch.count_nonzero((param.detach() != 0) & ~masks[name])) for name, param in prunable.items())
