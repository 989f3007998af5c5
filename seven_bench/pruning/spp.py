"""`pruner=spp`: Solution Path Pruning (Ding et al., ICLR 2025; ALGORITHMS.md 4.14, corrected by 7.6/7.9).

One search (spp_search.py) yields a ranking of every paired structure (qk dimension, v dimension, FFN
neuron; structure_gates.py): the solution path. It is stored once per (model, task, seed, search settings)
as an artifact, never per sparsity, so a sweep over sparsities searches once. Each cell cuts the path by
parameter cost to its target sparsity, turns the removed structures into element masks over the prunable
set (records, sparsity accounting and the export read those), then fine-tunes with the normal recipe.

Ranking (most important first): the original's saved score `step_record` (recorded steps in the support),
higher first; ties by earlier entry step, then by larger final Bregman variable z (nearest to entering),
then by position. `rank_by=entry_step` puts the entry step first.

Cut (`cut=global`): walk the ranking from the least important end, adding each structure's parameter cost;
remove the prefix whose cumulative cost is nearest round(sparsity * prunable weights), a tie taking the
shorter prefix: the original's argmin |cumsum - total * sparsity| (`set_alpha_sparsity`) with costs in
weights instead of entry counts. The achieved count is within half of one structure's cost of the target.
`cut=per_group` is the code's separate cut for attention (qk + v) and MLP entries at one common fraction.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from seven_bench.artifacts import producing
from seven_bench.errors import UserError
from seven_bench.pruning.base import PruneContext, Pruner
from seven_bench.pruning.configured import from_config
from seven_bench.pruning.spp_search import PENALTIES, SearchSettings, lambda_for_length, run_search
from seven_bench.pruning.structure_gates import GROUPS, bert_layers, entry_costs, masks_for_removed

RANK_BY = ("step_record", "entry_step")
CUTS = ("global", "per_group")
ARTIFACT_KIND = "spp_path"
PATH_FILE = "path.pt"


def flat(per_group: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """group -> [layers, entries] as one vector: all qk entries layer by layer, then v, then ffn."""
    return torch.cat([per_group[g].reshape(-1) for g in GROUPS])


def unflat(vector: torch.Tensor, like: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out, start = {}, 0
    for g in GROUPS:
        n = like[g].numel()
        out[g] = vector[start : start + n].reshape(like[g].shape)
        start += n
    return out


def path_order(path: Mapping[str, Any], rank_by: str = "step_record") -> torch.Tensor:
    """Flat entry indices, most important first (module docstring). An entry that never joined the support
    counts as joining after the last step."""
    record = flat(path["step_record"]).double().numpy()
    entry = flat(path["entry_step"]).double().numpy()
    entry = np.where(entry < 0, float(path["steps"]), entry)
    z = flat(path["z"]).double().numpy()
    index = np.arange(record.size)
    primary, secondary = (-record, entry) if rank_by == "step_record" else (entry, -record)
    return torch.from_numpy(np.lexsort((index, -z, secondary, primary)))  # lexsort: last key is primary


def cut_path(order: torch.Tensor, costs: torch.Tensor, target: int) -> torch.Tensor:
    """Which entries to remove (bool, flat) so that the removed cost is nearest `target`: the shortest prefix
    of the reversed order (least important first) whose cumulative cost is nearest the target."""
    removal = order.flip(0)
    cumulative = torch.cat([torch.zeros(1, dtype=torch.int64), costs[removal].cumsum(0)])
    k = int(torch.argmin((cumulative - int(target)).abs()))  # first minimum: a tie keeps more
    removed = torch.zeros(costs.numel(), dtype=torch.bool)
    removed[removal[:k]] = True
    return removed


def cut_per_group(
    order: torch.Tensor, costs: torch.Tensor, target: int, like: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """The original's per-group cut: attention entries (qk and v) and MLP entries each cut at the same
    fraction target / structural total, each by `cut_path` within its group."""
    sizes = [like[g].numel() for g in GROUPS]
    attn = torch.zeros(sum(sizes), dtype=torch.bool)
    attn[: sizes[0] + sizes[1]] = True
    fraction = target / max(1, int(costs.sum()))
    removed = torch.zeros_like(attn)
    for members in (attn, ~attn):
        sub = order[members[order]]
        removed |= cut_path(sub, costs, round(fraction * int(costs[members].sum())))
    return removed


def _number(key: str, value: Any, low: float, strict: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value > low if strict else value >= low)
    if not ok:
        raise UserError(f"pruner.{key}={value!r} must be a number {'>' if strict else '>='} {low}")
    return float(value)


def _integer(key: str, value: Any, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise UserError(f"pruner.{key}={value!r} must be an integer >= {low}")
    return value


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise UserError(f"pruner.{key}={value!r}: choose one of {', '.join(choices)}")
    return str(value)


class SppPruner(Pruner):
    """Pre-pruner: search (or load the stored path), cut at the cell's sparsity, fixed masks, fine-tune.
    Keyword arguments are conf/pruner/spp.yaml's keys (documented there)."""

    name = "spp"
    timing = "pre"
    structured = True  # whole rows and columns go by design: run.py does not read them as layer collapse

    def __init__(
        self,
        density: float,
        search_epochs: float = 1.0,
        search_steps: int = 0,
        search_lr: float = 1e-3,
        betas: Any = (0.9, 0.999),
        eps: float = 1e-4,
        kappa: float = 1.0,
        lam: Any = "auto",
        entry_fraction: float = 0.333,
        interval: int = 10,
        penalty: str = "none",
        w_sp_attn: float = 4.8e-4,
        w_sp_mlp: float = 2e-5,
        rank_by: str = "step_record",
        cut: str = "global",
    ):
        super().__init__(density)
        self.search_epochs = _number("search_epochs", search_epochs, 0.0, strict=True)
        self.search_steps = _integer("search_steps", search_steps or 0, 0)
        self.lr = _number("search_lr", search_lr, 0.0, strict=True)
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
            raise UserError(f"pruner.betas={betas!r} must be two numbers in [0, 1)")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = _number("eps", eps, 0.0, strict=True)
        self.kappa = _number("kappa", kappa, 0.0, strict=True)
        self.lam = None if lam in (None, "auto") else _number("lam", lam, 0.0)
        self.entry_fraction = _number("entry_fraction", entry_fraction, 0.0, strict=True)
        if self.entry_fraction > 1:
            raise UserError(f"pruner.entry_fraction={self.entry_fraction} must be in (0, 1]")
        self.interval = _integer("interval", interval, 1)
        self.penalty = _choice("penalty", penalty, PENALTIES)
        self.w_sp_attn, self.w_sp_mlp = _number("w_sp_attn", w_sp_attn, 0.0), _number("w_sp_mlp", w_sp_mlp, 0.0)
        self.rank_by = _choice("rank_by", rank_by, RANK_BY)
        self.cut = _choice("cut", cut, CUTS)
        self.facts: dict[str, Any] = {}

    def search_settings(self, steps_per_epoch: int) -> tuple[SearchSettings, str]:
        steps = self.search_steps or max(1, round(self.search_epochs * steps_per_epoch))
        if self.lam is not None:
            lam, rule = self.lam, f"pruner.lam={self.lam} as given"
        else:
            lam = lambda_for_length(steps, self.lr, self.betas[0], self.kappa, self.entry_fraction)
            rule = (
                f"lambda = z of a scale held at 1 after round({self.entry_fraction:g} * {steps}) search steps "
                "(sum of kappa * lr / (1 - beta1^t)): it joins the support at that share of any search length"
            )
        settings = SearchSettings(
            steps, self.lr, self.betas, self.eps, self.kappa, lam, self.interval, self.penalty,
            self.w_sp_attn, self.w_sp_mlp,
        )  # fmt: skip
        return settings, rule

    def _path(self, ctx: PruneContext, layers: list[Any], settings: SearchSettings) -> dict[str, Any]:
        key = {"identity": ctx.identity, "batch_size": ctx.settings.get("batch_size"), "search": settings.key()}
        artifact = ctx.artifacts.get(ARTIFACT_KIND, key) if ctx.artifacts is not None else None
        with producing(artifact):
            if artifact is not None and artifact.complete:
                self.facts.update(search_reused=True, artifact=artifact.describe())
                return artifact.load(PATH_FILE)
            bar = tqdm(
                total=settings.steps, desc="spp search", disable=not ctx.progress, dynamic_ncols=True, leave=False
            )
            path = run_search(ctx.model, layers, settings, ctx.num_labels, ctx.batches, bar)
            bar.close()
            self.facts["search_reused"] = False
            if artifact is not None:
                artifact.save(PATH_FILE, path)
                artifact.finish({"steps": path["steps"], "seconds": path["seconds"]})
                self.facts["artifact"] = artifact.describe()
            return path

    def prepare(self, ctx: PruneContext) -> None:
        layers = bert_layers(ctx.model, ctx.prunable, self.name)
        settings, rule = self.search_settings(ctx.steps_per_epoch or 1)
        path = self._path(ctx, layers, settings)
        costs_by_group = entry_costs(layers, ctx.prunable)
        costs = flat(costs_by_group)
        total = sum(p.numel() for p in ctx.prunable.values())
        target = round((1.0 - self.density) * total)
        structural = int(costs.sum())
        warnings = []
        if target > structural:
            warnings.append(
                f"spp removes at most {structural} of {total} prunable weights ({structural / total:.4f}): the "
                f"target {1 - self.density:g} is out of reach and every gated structure is removed"
            )
        entered = flat(path["entry_step"])
        entered = entered[entered >= 0]
        span = int(entered.max() - entered.min()) + 1 if entered.numel() else 0
        if span < 0.1 * path["steps"]:
            warnings.append(
                f"spp: every structure joined the support within {span} of {path['steps']} search steps (the scales "
                f"moved little from 1): the ranking rests on its tie-breaks (steps in the support, then z); a longer "
                "search or a larger pruner.search_lr spreads the entry steps"
            )
        order = path_order(path, self.rank_by)
        if self.cut == "global":
            removed = cut_path(order, costs, min(target, structural))
        else:
            removed = cut_per_group(order, costs, min(target, structural), costs_by_group)
        removed_by_group = unflat(removed, costs_by_group)
        masks = masks_for_removed(layers, removed_by_group, ctx.prunable)
        self.masks = {n: m.to(ctx.prunable[n].device) for n, m in masks.items()}
        removed_weights = int(costs[removed].sum())
        self.facts.update(
            variant="search: only the scales trained (weights frozen), Adam + linearised Bregman shrinkage",
            search={**settings.key(), "lambda_rule": rule, "seconds": path.get("seconds"), "steps_run": path["steps"]},
            penalty=(
                "none: as the original, whose w_sp*||alpha-Gamma||^2 is added to the loss after backward and "
                "the optimizer step, so it has no effect"
                if self.penalty == "none"
                else "effective: w_sp*||alpha-Gamma||^2 added before backward (Gamma fixed)"
            ),
            rank_by=self.rank_by,
            cut=self.cut,
            boundary_rule="prefix of the least-important-first order with cumulative cost nearest the target; "
            "a tie keeps more",
            target_removed_weights=target,
            removed_weights=removed_weights,
            structural_weights=structural,
            structures={
                g: {
                    "removed": int(removed_by_group[g].sum()),
                    "total": removed_by_group[g].numel(),
                    "sparsity": float(removed_by_group[g].float().mean()),
                }
                for g in GROUPS
            },
            never_entered={g: int((path["entry_step"][g] < 0).sum()) for g in GROUPS},
            entry_step_span=span,
            support_trajectory=path.get("trajectory", []),
            warnings=warnings,
        )

    def steps_before_finetune(self) -> int:
        """The search's steps (only the scales train; the weights are frozen)."""
        return int((self.facts.get("search") or {}).get("steps_run", 0))

    def summary(self) -> dict[str, Any]:
        facts = dict(self.facts)
        facts["warnings"] = list(facts.get("warnings", []))
        return facts


def build_spp(cfg: Mapping[str, Any], density: float, seed: int) -> SppPruner:
    return from_config(SppPruner, cfg, density)
