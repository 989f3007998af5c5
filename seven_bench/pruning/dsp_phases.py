"""DSP's phases that train inside `prepare` (the pipelined mode's dense fine-tune, the search when a final
fine-tune follows it) and what its run record says."""

from __future__ import annotations

from typing import Any

import torch

from seven_bench.artifacts import producing
from seven_bench.pruning.base import PruneContext, Pruner
from seven_bench.recipes import TRAINER_KEYS
from seven_bench.train import run_steps


def dense_finetune(ctx: PruneContext) -> dict[str, Any]:
    """Pipelined DSP's first phase: the cell's whole dense fine-tune (ctx.total_steps steps, the cell's
    recipe), kept as an artifact keyed by model, task, seed, trainer settings and steps, so cells of every
    K share one fine-tune (ALGORITHMS.md 7.7: 1 FT + 1/3 FT per K). Afterwards the global RNG is reseeded
    from the cell's seed, so a cell that reuses the artifact continues exactly as one that trained it."""
    steps = int(ctx.total_steps)
    settings = {k: ctx.settings.get(k) for k in TRAINER_KEYS}
    key = {"identity": ctx.identity, "trainer": settings, "steps": steps, "device_type": ctx.device.type}
    artifact = ctx.artifacts.get("dense_finetune", key) if ctx.artifacts is not None else None
    with producing(artifact):
        if artifact is not None and artifact.complete:
            ctx.model.load_state_dict(artifact.load("model.pt"))
            source = "artifact"
        else:
            run_steps(ctx, steps, desc="dsp dense fine-tune")
            source = "trained"
            if artifact is not None:
                artifact.save("model.pt", {k: v.detach().cpu() for k, v in ctx.model.state_dict().items()})
                artifact.finish({"steps": steps})
    torch.manual_seed(ctx.seed)
    facts: dict[str, Any] = {"steps": steps, "source": source}
    if artifact is not None:
        facts["artifact"] = artifact.describe()
    return facts


def search_in_prepare(pruner: Pruner, ctx: PruneContext) -> None:
    """The search inside `prepare` (pipelined: logits only, the model frozen; joint with `final_finetune`:
    model + logits) with a fresh optimizer and the cell's recipe over the search's steps; the decision is
    taken at its last step. The cell then evaluates the pruned model as it is (pipelined, as run_dsp.py),
    or fine-tunes it first (`final_finetune=true`)."""
    run_steps(
        ctx,
        pruner.search_steps,
        extra_groups=[pruner.logit_group()],
        on_step=lambda step, loss: pruner.advance(step, ctx),
        desc="dsp search",
    )


def summarize(pruner: Pruner) -> dict[str, Any]:
    """Head and weight sparsity, the kept heads per layer, the temperature schedule and what ran."""
    heads = sum(layer.num_heads for layer in pruner.layers)
    per_head = [layer.weights_per_head for layer in pruner.layers]
    all_heads = sum(n * layer.num_heads for n, layer in zip(per_head, pruner.layers))
    out: dict[str, Any] = {
        "method": "dsp",
        "variant": pruner.mode,
        "gate": "gumbel_soft_top_k" if pruner.gate == "soft" else "straight_through_top_k",
        "gated_at": "head outputs via W_o columns (= the original's attention_probs gate; SDPA kept)",
        "heads_total": heads,
        "heads_kept": pruner.k,
        "budget_from": "pruner.heads_kept" if pruner.heads_kept else "sparsity as a fraction of heads (round half up)",
        "head_sparsity": 1 - pruner.k / heads if heads else 0.0,
        "head_weights": all_heads,
        "weights_per_head": per_head[0] if per_head else 0,
        "search_steps": pruner.search_steps,
        "search_in": "the fine-tune loop" if pruner.search_in_fit else "prepare",
        "eval_during_search": "hard top-K of the current logits (the original evaluates with a Gumbel sample)",
        "logits_lr": pruner.logits_lr,
        "temperature": {
            "tau0": pruner.tau0,
            "tauf": pruner.tauf,
            "annealing": pruner.annealing,
            "cooldown_steps": pruner.cooldown,
            "trajectory": pruner.trajectory,
        },
        "evaluated": "after a fine-tune of the head-pruned model (final_finetune=true)"
        if pruner.final_finetune
        else "without further training, as run_dsp.py",
        "decided": pruner.decided,
        "warnings": [],
    }
    if pruner.masks is not None and pruner.keep is not None:
        total = sum(m.numel() for m in pruner.masks.values())
        removed = sum(m.numel() - int(m.sum()) for m in pruner.masks.values())
        out["param_sparsity_equivalent"] = removed / total
        out["heads_share_of_prunable"] = all_heads / total
        out["kept_heads"] = [torch.nonzero(row).flatten().tolist() for row in pruner.keep.cpu()]
    if pruner.w is not None:
        out["logits"] = [[round(float(v), 6) for v in row] for row in pruner.w.detach().cpu()]
    out.update(pruner.facts)
    if pruner.annealing and pruner.gate == "soft" and pruner.search_steps < pruner.cooldown:
        out["warnings"].append(
            f"dsp: the temperature never cools down ({pruner.search_steps} search steps < cooldown "
            f"{pruner.cooldown}), as the original warns: the final tau is "
            f"{pruner.current_temperature():.3g}, not {pruner.tauf:g}"
        )
    if not pruner.heads_kept:
        out["sparsity_note"] = (
            "for dsp the cell's sparsity is the fraction of heads removed; param_sparsity_equivalent is the "
            "fraction of prunable weights removed (the record's achieved sparsity)"
        )
    return out
