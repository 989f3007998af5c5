"""SPP's search (ALGORITHMS.md 4.14, 7.6; yizhuoDi/Solution-Path-Pruning `adamw_spp.py`, `deit/engine.py`):
scale vectors on the paired structures, trained alone (every model weight frozen) by Adam, each followed by
the split linearised Bregman (differential inclusion) step

    z <- z + kappa * eta_t * (alpha - Gamma),   eta_t = lr / (1 - beta1^t)   (Adam's bias-corrected step)
    Gamma <- ReLU(z * ReLU(1 - lambda / |z|))  = ReLU(z - lambda)            (shrinkage, lambda >= 0)

Gamma starts at 0 and gains support one entry at a time; when an entry joins is its rank on the solution
path. `step_record` counts, every `interval` steps and at the last, the entries with Gamma != 0 (the saved
"alpha" of the original, which its retrain thresholds).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from seven_bench.pruning.base import batch_targets, forward_logits, task_loss
from seven_bench.pruning.structure_gates import GROUPS, LayerStructure, StructureGates

PENALTIES = ("none", "effective")


def shrink(z: torch.Tensor, lam: float) -> torch.Tensor:
    """The original's ReLU(z * ReLU(1 - lambda/|z|)): for lambda >= 0 this is ReLU(z - lambda) (z <= lambda
    gives 0; a negative z never enters), written without the 0/0 the original hits at z = 0, lambda = 0."""
    return torch.relu(z - lam)


def bregman_step_(
    z: torch.Tensor, gamma: torch.Tensor, alpha: torch.Tensor, step_size: float, kappa: float, lam: float
) -> None:
    """One differential-inclusion step in place, after alpha's Adam step (the original's order)."""
    z.add_(step_size * kappa * (alpha - gamma))
    gamma.copy_(shrink(z, lam))


def adam_step_size(lr: float, beta1: float, t: int) -> float:
    """eta_t = lr / (1 - beta1^t) at the 1-based step t: the step the original feeds the Bregman variable."""
    return lr / (1.0 - beta1**t)


def lambda_for_length(steps: int, lr: float, beta1: float, kappa: float, entry_fraction: float) -> float:
    """lambda rescaled to the search length. An entry whose scale stays at its initial 1 grows z by
    kappa * eta_t per step, so it joins the support on the step after z first exceeds lambda. This rule sets
    lambda to the z such an entry has after round(entry_fraction * steps) steps: the same share of every
    search, short or long. (The original's lambda = 3 at lr 1e-3 puts that step near 3,000 of its 60-epoch
    search; with the same lambda a 78-step search would never leave Gamma = 0.) Entries whose scale shrinks
    join later or never, which orders the path."""
    n = max(1, round(entry_fraction * steps))
    return sum(kappa * adam_step_size(lr, beta1, t) for t in range(1, n + 1))


@dataclass(frozen=True)
class SearchSettings:
    """What determines a search (and so the artifact key): never the sparsity."""

    steps: int
    lr: float
    betas: tuple[float, float]
    eps: float
    kappa: float
    lam: float
    interval: int
    penalty: str
    w_sp_attn: float
    w_sp_mlp: float

    def key(self) -> dict[str, Any]:
        return {**asdict(self), "betas": list(self.betas)}


class SppSearch:
    """The search on a model, one `step(batch)` at a time (the bench times one step). Freezes every model
    parameter and attaches the gates on construction; `close()` detaches them and restores requires_grad, so
    the model leaves the search exactly as it came (the search changes no weight)."""

    def __init__(self, model: nn.Module, layers: list[LayerStructure], settings: SearchSettings, num_labels: int):
        device = next(model.parameters()).device
        self.model, self.settings, self.num_labels = model, settings, num_labels
        self._grad_flags = [(p, p.requires_grad) for p in model.parameters()]
        for p, _ in self._grad_flags:
            p.requires_grad_(False)
        self.gates = StructureGates(layers, device).attach(model)
        # the original's AdamW group for the scales: weight decay 0, eps 1e-4 (so plain Adam)
        self.optimizer = torch.optim.Adam(
            list(self.gates.parameters()), lr=settings.lr, betas=settings.betas, eps=settings.eps, weight_decay=0.0
        )
        zeros = {g: torch.zeros_like(self.gates.alpha[g]) for g in GROUPS}
        self.z = {g: t.clone() for g, t in zeros.items()}
        self.gamma = {g: t.clone() for g, t in zeros.items()}
        self.step_record = {g: t.clone() for g, t in zeros.items()}
        self.entry_step = {g: torch.full_like(t, -1, dtype=torch.int64) for g, t in zeros.items()}
        self.t = 0
        self.trajectory: list[dict[str, Any]] = []

    def penalty(self) -> torch.Tensor | None:
        """`penalty=effective`: w_sp * ||alpha - Gamma||^2 (Gamma held fixed) added to the loss *before* the
        backward pass. The original adds this sum to `loss` after backward and the optimizer step
        (`deit/engine.py` L248-260): only its logged value changes, no gradient reaches alpha."""
        if self.settings.penalty != "effective":
            return None
        s = self.settings
        attn = sum(((self.gates.alpha[g] - self.gamma[g]) ** 2).sum() for g in ("qk", "v"))
        return s.w_sp_attn * attn + s.w_sp_mlp * ((self.gates.alpha["ffn"] - self.gamma["ffn"]) ** 2).sum()

    def step(self, batch: dict[str, Any]) -> torch.Tensor:
        s = self.settings
        loss = task_loss(forward_logits(self.model, batch), batch_targets(batch), self.num_labels)
        extra = self.penalty()
        total = loss + extra if extra is not None else loss
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.t += 1
        eta = adam_step_size(s.lr, s.betas[0], self.t)
        with torch.no_grad():
            for g in GROUPS:
                bregman_step_(self.z[g], self.gamma[g], self.gates.alpha[g], eta, s.kappa, s.lam)
                joined = (self.gamma[g] != 0) & (self.entry_step[g] < 0)
                self.entry_step[g][joined] = self.t - 1
                if (self.t - 1) % s.interval == 0 or self.t == s.steps:
                    self.step_record[g] += (self.gamma[g] != 0).to(self.step_record[g].dtype)
        if self.t == 1 or self.t == s.steps or self.t % max(1, s.steps // 20) == 0:
            support = {g: float((self.gamma[g] != 0).float().mean()) for g in GROUPS}
            self.trajectory.append({"step": self.t - 1, "loss": float(loss.detach()), "support": support})
        return loss.detach()

    def close(self) -> None:
        self.gates.detach_hooks()
        for p, flag in self._grad_flags:
            p.requires_grad_(flag)

    def result(self) -> dict[str, Any]:
        """The path as stored in the artifact (CPU tensors, group -> [layers, entries])."""

        def cpu(d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {g: t.detach().cpu().clone() for g, t in d.items()}

        return {
            "entry_step": cpu(self.entry_step),
            "step_record": cpu(self.step_record),
            "z": cpu(self.z),
            "gamma": cpu(self.gamma),
            "alpha": cpu({g: self.gates.alpha[g] for g in GROUPS}),
            "steps": self.t,
            "trajectory": self.trajectory,
        }


def run_search(
    model: nn.Module,
    layers: list[LayerStructure],
    settings: SearchSettings,
    num_labels: int,
    batches: Any,
    progress: Any = None,
) -> dict[str, Any]:
    """The whole search on `settings.steps` batches of the stream, model in train mode (dropout on, as the
    original). Runs inside a forked RNG, so the fine-tune after it draws the same dropout whether this cell
    searched or loaded a stored path."""
    devices = [torch.cuda.current_device()] if next(model.parameters()).is_cuda else []
    started = time.perf_counter()
    was_training = model.training
    with torch.random.fork_rng(devices=devices):
        search = SppSearch(model, layers, settings, num_labels)
        model.train()
        try:
            for _ in range(settings.steps):
                search.step(next(batches))
                if progress is not None:
                    progress.update(1)
        finally:
            search.close()
            model.train(was_training)
    out = search.result()
    out["seconds"] = time.perf_counter() - started
    return out
