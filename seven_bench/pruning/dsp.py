"""DSP: differentiable subset pruning of attention heads (Li, Cotterell, Sachan, TACL 2021), as
`rycolab/differentiable-subset-pruning` runs it (ALGORITHMS.md 4.15, corrected by 7.7/7.9).

One float64 logit per head over all layers (Xavier-uniform init on the [layers, heads] matrix, as
`modeling_gated_bert.py` L1014). Every training forward draws gate = gumbel_soft_top_k(w, K, tau): a soft
K-hot vector summing to K that multiplies each head's output (see head_gates.py for why the output
projection's columns are gated rather than the probabilities: the same function). tau anneals
geometrically from tau0 = 1000 to tauf = 1e-8 over the first ~68% of the search (25,000 of 36,816 MNLI
steps joint; 8,333 of 12,272 pipelined), then stays at tauf (`trainer_dsp.py` L285-296). The head logits
train with AdamW at lr 0.5 (no weight decay) in their own group, under the same linear decay as the model.

* `mode=joint` (default): the cell's fine-tune is the search, model and logits trained together.
* `mode=pipelined`: inside `prepare`, the model is first fine-tuned dense with the cell's recipe (shared
  between cells of any K as an artifact), then frozen while only the logits train for `pipelined_epochs`
  (1 in the original); the cell then evaluates the pruned model without a fine-tune (`fine_tune = False`).
* `gate=ste`: the straight-through variant: forward hard top-K of w (no noise), identity backward.

The decision is the top-K of w (no noise, `convert_gate_to_mask`), taken after the last search step:
the gates come off and the heads' element masks (q/k/v rows and W_o columns) go on, so the evaluated model
and the record's masks agree. As in `run_dsp.py` L258-262 the pruned model is evaluated without further
training; `final_finetune=true` runs the search inside `prepare` instead and fine-tunes the head-pruned
model with the cell's recipe (an option, not the original).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from seven_bench.errors import UserError
from seven_bench.pruning.base import PruneContext, Pruner, apply_masks_
from seven_bench.pruning.dsp_phases import dense_finetune, search_in_prepare, summarize
from seven_bench.pruning.head_gates import AttentionLayer, HeadGates, find_attention_layers, head_element_masks

TINY = torch.finfo(torch.double).tiny  # the original's EPSILON
MODES = ("joint", "pipelined")
GATES = ("soft", "ste")


def gumbel_soft_top_k(
    w: torch.Tensor, k: int, tau: float, generator: torch.Generator | None = None, noise: bool = True
) -> torch.Tensor:
    """`gated_bert_utilities.gumbel_soft_top_k`: r = w + Gumbel noise; p_1 = softmax(r / tau); for j = 2..K,
    r += log(max(1 - p_{j-1}, tiny)) and p_j = softmax(r / tau); returns sum_j p_j (each entry in [0, 1],
    total K). As tau -> 0 each p_j is one-hot on the j-th largest r, so the gate is the hard top-K of r."""
    if noise:
        u = torch.rand(w.shape, generator=generator, dtype=torch.float64).to(w.device) + TINY
        r = w - torch.log(-torch.log(u.clamp(max=1.0))).to(w.dtype)
    else:
        r = w + 0.0
    floor = torch.full_like(r, TINY)
    p = torch.exp(F.log_softmax(r / tau, dim=0))
    total = p
    for _ in range(1, k):
        r = r + torch.log(torch.maximum(1 - p, floor))
        p = torch.exp(F.log_softmax(r / tau, dim=0))
        total = total + p
    return total


class _StraightThroughTopK(torch.autograd.Function):
    """`STEFunction`: forward w > (K+1)-th largest w (exactly K ones without ties), backward identity."""

    @staticmethod
    def forward(ctx: Any, w: torch.Tensor, k: int) -> torch.Tensor:
        threshold = w.sort(descending=True)[0][k]
        return (w > threshold).to(w.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def ste_top_k(w: torch.Tensor, k: int) -> torch.Tensor:
    return _StraightThroughTopK.apply(w, k)


def temperature(step: int, tau0: float, tauf: float, cooldown: int, annealing: bool = True) -> float:
    """tau at `step` optimizer steps done: exp(ln tau0 - step / T_cool * (ln tau0 - ln tauf)) while
    step <= T_cool, tauf after (and always, without annealing)."""
    if not annealing or cooldown <= 0 or step > cooldown:
        return float(tauf)
    return math.exp(math.log(tau0) - step / cooldown * (math.log(tau0) - math.log(tauf)))


def heads_budget(total_heads: int, density: float, heads_kept: int = 0) -> int:
    """K, the heads kept: `heads_kept` when given (> 0), else round-half-up of (1 - sparsity) * heads
    (72 heads at sparsity 0.5 keep 36; 144 at 0.3 keep round(100.8) = 101)."""
    k = int(heads_kept) if heads_kept else int(math.floor(round(density * total_heads, 9) + 0.5))
    if not 1 <= k <= total_heads:
        raise UserError(
            f"pruner=dsp would keep {k} of the model's {total_heads} attention heads: pass pruner.heads_kept in "
            f"[1, {total_heads}] or a sparsity that keeps at least one head"
        )
    return k


def top_k_heads(w: torch.Tensor, k: int) -> torch.Tensor:
    """The decision: True for the K largest logits (ties: the lower head index), shaped like w."""
    order = torch.sort(w.detach().flatten(), descending=True, stable=True).indices[:k]
    keep = torch.zeros(w.numel(), dtype=torch.bool, device=w.device)
    keep[order] = True
    return keep.view_as(w)


class DSP(Pruner):
    """Head logits + Gumbel soft top-K gates during the search, top-K element masks after it."""

    name = "dsp"
    timing = "dyn"
    structured = True  # removed heads empty whole q/k/v rows by design: not layer collapse

    def __init__(
        self,
        density: float,
        seed: int = 0,
        mode: str = "joint",
        gate: str = "soft",
        heads_kept: int = 0,
        tau0: float = 1000.0,
        tauf: float = 1e-8,
        annealing: bool = True,
        cooldown_fraction: float = 25000 / 36816,
        cooldown_steps: int = 0,
        logits_lr: float = 0.5,
        pipelined_epochs: float = 1.0,
        final_finetune: bool = False,
    ):
        super().__init__(density)
        if mode not in MODES:
            raise UserError(f"pruner.mode={mode!r}: choose one of {', '.join(MODES)}")
        if gate not in GATES:
            raise UserError(f"pruner.gate={gate!r}: choose soft (Gumbel soft top-K) or ste (straight-through)")
        if int(heads_kept) < 0 or int(cooldown_steps) < 0:
            raise UserError("pruner.heads_kept and pruner.cooldown_steps must be >= 0 (0: derived)")
        if not (tau0 > 0 and tauf > 0 and logits_lr > 0 and pipelined_epochs > 0 and 0 < cooldown_fraction <= 1):
            raise UserError(
                "pruner=dsp needs tau0, tauf, logits_lr, pipelined_epochs > 0 and cooldown_fraction in (0, 1]"
            )
        self.seed, self.mode, self.gate, self.heads_kept = int(seed), mode, gate, int(heads_kept)
        self.tau0, self.tauf, self.annealing = float(tau0), float(tauf), bool(annealing)
        self.cooldown_fraction, self.cooldown_steps = float(cooldown_fraction), int(cooldown_steps)
        self.logits_lr, self.pipelined_epochs, self.final_finetune = (
            float(logits_lr),
            float(pipelined_epochs),
            bool(final_finetune),
        )
        self.layers: list[AttentionLayer] = []
        self.w: nn.Parameter | None = None
        self.k = 0
        self.step = 0  # optimizer steps of the search done
        self.search_steps = 0
        self.cooldown = 0
        self.decided = False
        self.keep: torch.Tensor | None = None
        self.trajectory: list[list[float]] = []
        self.frozen: list[nn.Parameter] = []
        self.facts: dict[str, Any] = {}
        self._gates: HeadGates | None = None
        self._noise = torch.Generator().manual_seed(self.seed + 1)
        # joint without a final fine-tune: the cell's fine-tune loop is the search. Otherwise the search runs in
        # `prepare`, and only a final fine-tune (an option) trains the pruned model afterwards.
        self.search_in_fit = mode == "joint" and not self.final_finetune
        self.fine_tune = mode == "joint" or self.final_finetune

    # ---------------------------------------------------------------- set-up
    def prepare(self, ctx: PruneContext) -> None:
        self.layers = find_attention_layers(ctx.model, ctx.prunable)
        heads = sum(layer.num_heads for layer in self.layers)
        self.k = heads_budget(heads, self.density, self.heads_kept)
        if self.gate == "ste" and self.k >= heads:
            raise UserError(f"pruner.gate=ste needs fewer heads kept than the model's {heads}")
        w = torch.empty(len(self.layers), self.layers[0].num_heads, dtype=torch.float64)
        nn.init.xavier_uniform_(w, generator=torch.Generator().manual_seed(self.seed))
        self.w = nn.Parameter(w.to(ctx.device))
        if self.mode == "pipelined":
            self.facts["dense_finetune"] = dense_finetune(ctx)
        self._gates = HeadGates(ctx.model, self.layers, self._gate_values)
        self._gates.install()
        if self.mode == "pipelined":
            self.frozen = [p for p in ctx.model.parameters() if p.requires_grad]
            for p in self.frozen:
                p.requires_grad_(False)
        self.search_steps = self._search_length(ctx)
        self.cooldown = self.cooldown_steps or max(1, round(self.cooldown_fraction * self.search_steps))
        if not self.search_in_fit:
            search_in_prepare(self, ctx)

    def _search_length(self, ctx: PruneContext) -> int:
        if self.mode == "joint" or not ctx.steps_per_epoch:
            return int(ctx.total_steps)
        steps = max(1, round(self.pipelined_epochs * ctx.steps_per_epoch))
        cap = (ctx.settings or {}).get("max_steps")
        return min(steps, int(cap)) if cap else steps

    def logit_group(self) -> dict[str, Any]:
        assert self.w is not None
        return {"params": [self.w], "lr": self.logits_lr, "weight_decay": 0.0}

    def param_groups(self) -> list[dict[str, Any]]:
        return [self.logit_group()] if self.search_in_fit and self.w is not None else []

    def state_dict(self) -> dict[str, Any]:
        """A fine-tune checkpoint of the joint search: its position, temperature trajectory and Gumbel
        generator (the logits are saved with the trained tensors; a checkpoint never follows the decision,
        which is taken at the last step)."""
        return {"step": self.step, "trajectory": [list(t) for t in self.trajectory], "noise": self._noise.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.trajectory = int(state["step"]), [list(t) for t in state["trajectory"]]
        self._noise.set_state(state["noise"].cpu())

    # ---------------------------------------------------------------- gates
    def current_temperature(self) -> float:
        return temperature(self.step, self.tau0, self.tauf, self.cooldown, self.annealing)

    def _gate_values(self, training: bool) -> torch.Tensor | None:
        """Called once per model forward: training -> a fresh Gumbel soft top-K (or the STE top-K);
        evaluation during the search -> the hard top-K the search would decide now (no noise)."""
        assert self.w is not None
        if self.decided:
            return None
        if not training:
            return top_k_heads(self.w, self.k).to(torch.float64)
        if self.gate == "ste":
            return ste_top_k(self.w.flatten(), self.k).view_as(self.w)
        tau = self.current_temperature()
        return gumbel_soft_top_k(self.w.flatten(), self.k, tau, self._noise).view_as(self.w)

    # ---------------------------------------------------------------- steps and the decision
    def after_optimizer_step(self, step: int, ctx: PruneContext) -> None:
        self.advance(step, ctx)

    def advance(self, step: int, ctx: PruneContext) -> None:
        if self.decided:
            return
        self.step = step + 1
        every = max(1, self.search_steps // 10)
        if self.gate == "soft" and (step % every == 0 or self.step >= self.search_steps):
            self.trajectory.append([step, temperature(step, self.tau0, self.tauf, self.cooldown, self.annealing)])
        if self.step >= self.search_steps:
            self.decide(ctx)

    @torch.no_grad()
    def decide(self, ctx: PruneContext) -> None:
        """Top-K logits -> the gates come off, the heads' element masks go on (gate state and masks agree)."""
        assert self.w is not None and self._gates is not None
        self.keep = top_k_heads(self.w, self.k)
        self._gates.remove()
        for p in self.frozen:
            p.requires_grad_(True)
        self.frozen = []
        self.masks = head_element_masks(self.layers, ctx.prunable, self.keep)
        apply_masks_(ctx.prunable, self.masks)
        self.decided = True

    # ---------------------------------------------------------------- record
    def steps_before_finetune(self) -> int:
        """Pipelined: the dense fine-tune, then the search (logits only, the model frozen); joint: the search
        when it runs in `prepare` ahead of a final fine-tune, else none (the search is the fine-tune)."""
        dense = int((self.facts.get("dense_finetune") or {}).get("steps", 0))
        return dense + (0 if self.search_in_fit else self.search_steps)

    def summary(self) -> dict[str, Any]:
        return summarize(self)


def build_dsp(cfg: Any, density: float, seed: int) -> DSP:
    from seven_bench.pruning.configured import from_config

    return from_config(DSP, cfg, density, seed=seed)
