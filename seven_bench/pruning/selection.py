"""Selection: scores (+ keep ratio, + which entries may still be chosen) -> boolean masks.

Two orthogonal choices, each a small pure function:

* the **scope** a threshold applies to: one global threshold over every prunable tensor, one per
  tensor (`layer`), one per output row (`row`, Wanda's comparison group), or N:M groups (`nm`: at most
  N kept in every group of M consecutive input weights of a row), or whole structures (`head`, `neuron`,
  `structured` = both: structures.py, removed by one ranking of summed scores until the parameter target);
* the **count rule**, i.e. how many entries a cut keeps, as each original codebase computes it. One weight
  per step looks harmless, but in an iterated cut it snowballs, so every method defaults to its original's
  rule and the record names it:

  =================  ===========================================================  ==========================
  rule               kept                                                         originals
  =================  ===========================================================  ==========================
  ``exact``          exactly round(r n); ties broken by position                  SNIP (snip-public), torch
                                                                                  ``global_unstructured``
  ``floor``          exactly int(r n); ties broken by position                    movement's TopKBinarizer, GMP
  ``floor_ties``     the int(r n) largest, plus every entry tied with the         SEVEN (``strategies/utils``),
                     smallest of them (``topk`` then ``>=``)                      FORCE / Iter-SNIP (``get_mask``)
  ``kthvalue_ties``  every entry >= the int(n (1 - r))-th smallest                GraSP (``<=`` on -S),
                     (``kthvalue`` then ``masked_fill(S < thr)``)                 PLATON (``mask_with_threshold``)
  ``prune_floor``    all but the int(n (1 - r)) smallest; ties: the lower index   Wanda (stable ascending sort)
                     is pruned first
  =================  ===========================================================  ==========================

Global selection runs on one flat buffer without sorting: `kth_largest` brackets the threshold with
quantiles of a small sample, counts what lies above the bracket, and runs an exact `torch.kthvalue` only
on the few candidates inside it (full `kthvalue` as the fallback when the bracket misses).
"""

from __future__ import annotations

import functools
from typing import Callable

import torch

from seven_bench.errors import UserError
from seven_bench.pruning import global_cut
from seven_bench.pruning.structures import structured_topk

Masks = dict[str, torch.Tensor]
Scores = dict[str, torch.Tensor]

COUNT_RULES = ("exact", "floor", "floor_ties", "kthvalue_ties", "prune_floor")
SCOPES = ("global", "layer", "row", "nm")
# Whole attention heads, FFN neurons, or both (structures.py); the pruner binds the model's blocks at prepare.
STRUCTURED_SCOPES = {"head": ("head",), "neuron": ("neuron",), "structured": ("head", "neuron")}


def check_rule(rule: str) -> str:
    if rule not in COUNT_RULES:
        raise UserError(f"pruner.count_rule={rule!r}: choose one of {', '.join(COUNT_RULES)}")
    return rule


# The count rule of each method's own code (`count_rule: original`); the SEVEN repository's
# re-implementations ("<method>/seven_repo") use SEVEN's threshold function.
ORIGINAL_COUNT_RULES = {
    "random": "exact",
    "magnitude": "exact",
    "snip": "exact",
    "grasp": "kthvalue_ties",
    "iter_snip": "floor_ties",
    "force": "floor_ties",
    "seven_pre": "floor_ties",
    "seven_dyn": "floor_ties",
    "platon": "kthvalue_ties",
    "gmp": "floor",
    "movement": "floor",
    "wanda": "prune_floor",
    "platon/seven_repo": "floor_ties",
    "movement/seven_repo": "floor_ties",
    "soft_movement/seven_repo": "floor_ties",
}


def resolve_count_rule(value: str | None, method: str) -> str:
    """`original` (or unset) -> the rule of `method`'s own code; anything else must be a known rule."""
    if value in (None, "original"):
        return ORIGINAL_COUNT_RULES.get(method, "exact")
    return check_rule(str(value))


def check_nm(n: int, m: int, density: float) -> tuple[int, int]:
    """N:M fixes the density at n/m: a cell asking for another sparsity would be mislabelled."""
    n, m = int(n), int(m)
    if not 0 < n < m:
        raise UserError(f"pruner.n={n}, pruner.m={m}: N:M keeps n of every m weights, 0 < n < m (e.g. n=2 m=4)")
    if abs(density - n / m) > 1e-9:
        raise UserError(
            f"pruner.selection=nm with n={n} m={m} prunes exactly {1 - n / m:g} of the weights: "
            f"pass sparsity={1 - n / m:g}"
        )
    return n, m


def check_selection(selection: str, allowed: tuple[str, ...] = ("global", "layer", "row", "nm")) -> str:
    if selection not in allowed:
        raise UserError(f"pruner.selection={selection!r}: choose one of {', '.join(allowed)}")
    return selection


def keep_count(density: float, n: int, rule: str = "exact") -> int:
    """How many of n entries a cut at keep ratio r keeps, before ties (the ``*_ties`` rules may keep more)."""
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density {density} outside [0, 1]")
    if rule == "exact":
        k = int(round(density * n))
    elif rule in ("floor", "floor_ties"):
        k = int(density * n)
    else:  # kthvalue_ties, prune_floor: the originals count what they remove
        k = n - int(n * (1.0 - density))
    return min(n, max(0, k))


_DIRECT = 1_000_000  # below this, plain kthvalue is already cheap


def kth_largest(flat: torch.Tensor, k: int) -> torch.Tensor:
    """The exact k-th largest value of a 1-D tensor (1 <= k <= n), in a few linear passes."""
    n = flat.numel()
    if n <= _DIRECT:
        return torch.kthvalue(flat, n - k + 1).values
    lo, hi, _ = global_cut.bracket([flat], k)
    above = int(torch.count_nonzero(flat > hi))
    if above < k and int(torch.count_nonzero(flat >= lo)) >= k:
        candidates = flat[(flat >= lo) & (flat <= hi)]
        need = k - above  # the answer is the need-th largest candidate
        return torch.kthvalue(candidates, candidates.numel() - need + 1).values
    return torch.kthvalue(flat, n - k + 1).values


def top_k_flat(flat: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of exactly k largest entries of a 1-D tensor; ties broken by lowest index."""
    n = flat.numel()
    if k >= n:
        return torch.ones(n, dtype=torch.bool, device=flat.device)
    if k <= 0:
        return torch.zeros(n, dtype=torch.bool, device=flat.device)
    threshold = kth_largest(flat, k)
    mask = flat > threshold
    missing = k - int(torch.count_nonzero(mask))
    if missing > 0:
        ties = flat == threshold
        if int(torch.count_nonzero(ties)) == missing:  # the usual case: no surplus ties to break
            mask |= ties
        else:
            mask[torch.nonzero(ties).flatten()[:missing]] = True
    return mask


def select_flat(flat: torch.Tensor, density: float, rule: str = "exact") -> torch.Tensor:
    """One cut of a 1-D score vector under `rule` (see the module docstring)."""
    n = flat.numel()
    k = keep_count(density, n, rule)
    if rule in ("exact", "floor"):
        return top_k_flat(flat, k)
    if rule == "prune_floor":
        return _prune_smallest_stable(flat.view(1, -1), n - k).view(-1)
    if k <= 0:  # the originals fail here (topk/kthvalue of nothing); keep nothing / everything instead
        return torch.zeros(n, dtype=torch.bool, device=flat.device)
    if k >= n and rule == "kthvalue_ties":
        return torch.ones(n, dtype=torch.bool, device=flat.device)
    # floor_ties: ">=" the k-th largest. kthvalue_ties: ">=" the int(n(1-r))-th smallest, which is the
    # (k + 1)-th largest for k = n - int(n(1-r)): the threshold entry itself is kept too.
    kth = k if rule == "floor_ties" else min(n, k + 1)
    return flat >= kth_largest(flat, kth)


def _prune_smallest_stable(rows: torch.Tensor, prune: int) -> torch.Tensor:
    """Prune the `prune` smallest entries of each row, ties pruned in index order (a stable ascending sort)."""
    mask = torch.ones_like(rows, dtype=torch.bool)
    if prune > 0:
        order = torch.sort(rows, dim=1, stable=True).indices[:, :prune]
        mask.scatter_(1, order, False)
    return mask


def _fill_value(rule: str) -> float:
    """What an entry that may not be chosen again scores. SEVEN's code zeroes the importance of pruned
    entries (`importances[mask == 0] = 0`) and Iter-SNIP gives them the global minimum saliency (0, as
    pruned weights are 0): with a ``>=`` threshold that is 0, they are kept again, as in the originals."""
    return 0.0 if rule == "floor_ties" else float("-inf")


def _flat_part(score: torch.Tensor, eligible: torch.Tensor | None, rule: str) -> torch.Tensor:
    """One tensor's scores as a flat float32 view (a copy only when filled or converted); entries that may
    not be chosen (already pruned, no resurrection) are filled as the count rule says."""
    part = score.detach().reshape(-1).float()
    if eligible is not None:
        part = part.masked_fill(~eligible.reshape(-1), _fill_value(rule))
    return part


def _flat_scores(scores: Scores, eligible: Masks | None, rule: str = "exact") -> torch.Tensor:
    """One float32 buffer of every tensor's scores."""
    return torch.cat([_flat_part(s, None if eligible is None else eligible[n], rule) for n, s in scores.items()])


def _split(mask: torch.Tensor, scores: Scores) -> Masks:
    out: Masks = {}
    offset = 0
    for name, score in scores.items():
        n = score.numel()
        out[name] = mask[offset : offset + n].view(score.shape)
        offset += n
    return out


def _large_cut(parts: list[torch.Tensor], density: float, rule: str, eligible: list[torch.Tensor] | None = None):
    """`global_cut.cut` for the rules that reduce to "the kth largest, ties first or all" (None otherwise)."""
    n = sum(p.numel() for p in parts)
    k = keep_count(density, n, rule)
    if rule == "prune_floor":
        return None
    kth = min(n, k + 1) if rule == "kthvalue_ties" else k
    if kth <= 0 or kth >= n or (rule == "kthvalue_ties" and k >= n):
        return None  # keep nothing / everything: the flat path's edge cases
    ties = "first" if rule in ("exact", "floor") else "all"
    return global_cut.cut(parts, kth, ties, eligible, _fill_value(rule))


def global_topk(scores: Scores, density: float, eligible: Masks | None = None, count_rule: str = "exact") -> Masks:
    """One threshold over every prunable tensor (SEVEN, SNIP, GraSP, magnitude, PLATON). Above a million
    scores the cut works tensor by tensor (global_cut.py) instead of on one concatenated copy."""
    if sum(s.numel() for s in scores.values()) > _DIRECT:
        parts = [s.detach().reshape(-1).float() for s in scores.values()]
        allowed = None if eligible is None else [eligible[n].reshape(-1) for n in scores]
        masks = _large_cut(parts, density, count_rule, allowed)
        if masks is not None:
            return {name: mask.view(score.shape) for (name, score), mask in zip(scores.items(), masks)}
    flat = _flat_scores(scores, eligible, count_rule)
    return _split(select_flat(flat, density, count_rule), scores)


def layerwise_topk(scores: Scores, density: float, eligible: Masks | None = None, count_rule: str = "exact") -> Masks:
    """Each tensor cut to the same density (movement pruning's default TopK binarizer)."""
    out: Masks = {}
    for name, score in scores.items():
        flat = _flat_scores({name: score}, None if eligible is None else {name: eligible[name]}, count_rule)
        out[name] = select_flat(flat, density, count_rule).view(score.shape)
    return out


def _rows(score: torch.Tensor, eligible: torch.Tensor | None, rule: str) -> torch.Tensor:
    rows = score.detach().float().reshape(score.shape[0], -1)
    if eligible is not None:
        rows = rows.masked_fill(~eligible.reshape(rows.shape), _fill_value(rule))
    return rows


def rowwise_topk(scores: Scores, density: float, eligible: Masks | None = None, count_rule: str = "exact") -> Masks:
    """Each output row (dim 0 of a weight: one output unit's inputs) cut to the same density: Wanda's
    comparison group. Vectorised over rows; exact-count rules keep the same count in every row."""
    out: Masks = {}
    for name, score in scores.items():
        rows = _rows(score, None if eligible is None else eligible[name], count_rule)
        n = rows.shape[1]
        k = keep_count(density, n, count_rule)
        if count_rule in ("exact", "floor", "prune_floor"):
            if count_rule == "prune_floor":
                mask = _prune_smallest_stable(rows, n - k)
            else:  # the k largest of each row, ties to the lower index (a stable sort of -score)
                mask = torch.zeros_like(rows, dtype=torch.bool)
                if k > 0:
                    mask.scatter_(1, torch.sort(-rows, dim=1, stable=True).indices[:, :k], True)
        else:
            kth = k if count_rule == "floor_ties" else min(n, k + 1)
            if kth <= 0:
                mask = torch.zeros_like(rows, dtype=torch.bool)
            elif count_rule == "kthvalue_ties" and k >= n:
                mask = torch.ones_like(rows, dtype=torch.bool)
            else:
                mask = rows >= torch.kthvalue(rows, n - kth + 1, dim=1, keepdim=True).values
        out[name] = mask.view(score.shape)
    return out


def nm_mask(score: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """N:M along the input dimension: in every group of m consecutive weights of a row, keep the n
    largest (ties to the lower index). 2:4 keeps exactly half, the layout sparse tensor cores accept."""
    rows = score.detach().float().reshape(score.shape[0], -1)
    if rows.shape[1] % m:
        raise UserError(
            f"pruner.selection=nm needs every prunable tensor's input dimension divisible by m={m}; "
            f"one has shape {tuple(score.shape)}: choose another m"
        )
    groups = rows.reshape(rows.shape[0], -1, m)
    keep = torch.sort(-groups, dim=-1, stable=True).indices[..., :n]
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return mask.view(score.shape)


def nm_topk(
    scores: Scores,
    density: float,
    eligible: Masks | None = None,
    count_rule: str = "exact",
    *,
    n: int = 2,
    m: int = 4,
) -> Masks:
    """N:M selection for every tensor. The target n/m is reached at keep ratio n/m; an iterative method's
    earlier, denser steps keep round(r m) per group (clipped to [n, m]), so every step is itself a valid
    (k:m) pattern and the last one is n:m. Entries that may not be chosen again are filled as under the
    count rule (their group then keeps the best of the others first)."""
    per_group = min(m, max(n, int(round(density * m))))
    out: Masks = {}
    for name, score in scores.items():
        rows = _rows(score, None if eligible is None else eligible[name], count_rule)
        out[name] = nm_mask(rows, per_group, m).view(score.shape)
    return out


def nm_groups_ok(mask: torch.Tensor, n: int, m: int) -> bool:
    """True when no group of m consecutive input weights of any row keeps more than n."""
    groups = mask.reshape(mask.shape[0], -1).reshape(mask.shape[0], -1, m)
    return bool((groups.sum(-1) <= n).all())


Selection = Callable[..., Masks]
SELECTIONS: dict[str, Selection] = {"global": global_topk, "layer": layerwise_topk, "row": rowwise_topk, "nm": nm_topk}
SELECTIONS.update({scope: functools.partial(structured_topk, kinds=k) for scope, k in STRUCTURED_SCOPES.items()})
