"""What the trainer sees of a pruner (the timing part), and the context a pruner works in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

Masks = dict[str, torch.Tensor]


def task_loss(logits: torch.Tensor, labels: torch.Tensor, num_labels: int, temperature: float = 1.0) -> torch.Tensor:
    """Cross-entropy on logits / temperature (GraSP uses T = 200), or MSE for regression (STS-B),
    where a temperature has no meaning."""
    if num_labels == 1:
        return F.mse_loss(logits.squeeze(-1).float(), labels.float())
    return F.cross_entropy(logits.float() / temperature, labels)


def forward_logits(model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    return model(**inputs).logits


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

    def loss(self, batch: dict[str, Any], temperature: float = 1.0) -> torch.Tensor:
        return task_loss(forward_logits(self.model, batch), batch["labels"], self.num_labels, temperature)

    def mean_gradients(self, batches: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """dL/dW of the mean loss over `batches`, at the current (masked) weights."""
        self.model.zero_grad(set_to_none=True)
        for batch in batches:
            (self.loss(batch) / len(batches)).backward()
        return {n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach() for n, p in self.prunable.items()}

    def hessian_gradient(self, batches: list[dict[str, Any]], temperature: float) -> dict[str, torch.Tensor]:
        """H g for GraSP, as in alecwangcq/GraSP: g summed over the batches (first pass), then
        d/dW (g_stopgrad . dL/dW) accumulated over the same batches (second pass)."""
        names = list(self.prunable)
        params = [self.prunable[n] for n in names]
        grads = [torch.zeros_like(p) for p in params]
        for batch in batches:
            for acc, g in zip(grads, torch.autograd.grad(self.loss(batch, temperature), params)):
                acc.add_(g)
        self.model.zero_grad(set_to_none=True)
        for batch in batches:
            g_graph = torch.autograd.grad(self.loss(batch, temperature), params, create_graph=True)
            z = sum((g_fixed * g).sum() for g_fixed, g in zip(grads, g_graph))
            z.backward()
        out = {n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().clone() for n, p in zip(names, params)}
        self.model.zero_grad(set_to_none=True)
        return out


class Pruner:
    """Base: a pruner with no effect (dense). Subclasses set `timing` and override the hooks."""

    name = "dense"
    timing = "none"  # "pre" | "dyn" | "none"

    def __init__(self, density: float):
        self.density = density
        self.masks: Masks | None = None

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


@torch.no_grad()
def apply_masks_(prunable: dict[str, nn.Parameter], masks: Masks | None) -> None:
    """Zero pruned weights in place (no module wrappers, no weight_orig copies)."""
    if masks is None:
        return
    for name, param in prunable.items():
        param.mul_(masks[name])


def achieved_sparsity(prunable: dict[str, nn.Parameter], masks: Masks | None) -> tuple[float, dict[str, float]]:
    """Overall and per-tensor fraction of pruned weights (mask False; exact zeros when there is no mask)."""
    per_layer: dict[str, float] = {}
    pruned_total = total = 0
    for name, param in prunable.items():
        pruned = int(torch.count_nonzero(param.detach() == 0)) if masks is None else param.numel() - int(torch.count_nonzero(masks[name]))
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


def collapse_warnings(per_layer: dict[str, float]) -> list[str]:
    """One warning per fully pruned tensor. A global threshold can empty a whole layer whose weights sit
    on a small scale (MiniLM's pooler under magnitude pruning): the network then ignores its input, and
    a chance-level score in the table should be read as layer collapse, not as the method's accuracy."""
    return [f"{name} is fully pruned (layer collapse): everything after it no longer sees the input"
            + ("; model.prune_pooler=false keeps the pooler dense" if "pooler" in name else "")
            for name, fraction in per_layer.items() if fraction >= 1.0]


def pruned_but_nonzero(prunable: dict[str, nn.Parameter], masks: Masks | None) -> int:
    """Pruned weights that are not exactly zero: must be 0 after every optimizer step."""
    if masks is None:
        return 0
    return sum(int(torch.count_nonzero((param.detach() != 0) & ~masks[name])) for name, param in prunable.items())
