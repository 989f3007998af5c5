"""Selection: scores (+ keep ratio, + which entries may still be chosen) -> boolean masks.

Global selection runs on one flat buffer without sorting: `kth_largest` brackets the threshold with
quantiles of a small sample, counts what lies above the bracket, and runs an exact `torch.kthvalue` only
on the few candidates inside it (full `kthvalue` as the fallback when the bracket misses). Ties at the
threshold are broken by position, so exactly round(ratio * n) weights are kept: the achieved sparsity
equals the target to within one weight.
"""

from __future__ import annotations

import torch

Masks = dict[str, torch.Tensor]
Scores = dict[str, torch.Tensor]


def keep_count(keep_ratio: float, n: int) -> int:
    if not 0.0 <= keep_ratio <= 1.0:
        raise ValueError(f"keep ratio {keep_ratio} outside [0, 1]")
    return min(n, max(0, int(round(keep_ratio * n))))


_SAMPLE = 262_144  # sample size for the bracket; the candidate set is about n * 12 / sqrt(_SAMPLE)
_DIRECT = 1_000_000  # below this, plain kthvalue is already cheap


def kth_largest(flat: torch.Tensor, k: int) -> torch.Tensor:
    """The exact k-th largest value of a 1-D tensor (1 <= k <= n), in a few linear passes."""
    n = flat.numel()
    if n <= _DIRECT:
        return torch.kthvalue(flat, n - k + 1).values
    # A strided sample: cheap, deterministic, and exactness never depends on it (see the fallback).
    sample = flat[:: n // _SAMPLE][:_SAMPLE].sort().values
    rank = (n - k) / n  # ascending position of the answer, as a fraction
    margin = 6.0 / _SAMPLE ** 0.5
    lo = sample[max(0, int((rank - margin) * _SAMPLE))]
    hi = sample[min(_SAMPLE - 1, int((rank + margin) * _SAMPLE) + 1)]
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


def _flat_scores(scores: Scores, eligible: Masks | None) -> torch.Tensor:
    """One float32 buffer; entries that may not be chosen (already pruned, no resurrection) get -inf."""
    parts = []
    for name, score in scores.items():
        part = score.detach().reshape(-1).float()
        if eligible is not None:
            part = part.masked_fill(~eligible[name].reshape(-1), float("-inf"))
        parts.append(part)
    return torch.cat(parts)


def global_topk(scores: Scores, keep_ratio: float, eligible: Masks | None = None) -> Masks:
    """One threshold over every prunable tensor (SEVEN, SNIP, GraSP, magnitude, PLATON)."""
    flat = _flat_scores(scores, eligible)
    mask = top_k_flat(flat, keep_count(keep_ratio, flat.numel()))
    del flat
    out: Masks = {}
    offset = 0
    for name, score in scores.items():
        n = score.numel()
        out[name] = mask[offset:offset + n].view(score.shape)
        offset += n
    return out


def layerwise_topk(scores: Scores, keep_ratio: float, eligible: Masks | None = None) -> Masks:
    """Each tensor cut to the same density (movement pruning's default TopK binarizer)."""
    out: Masks = {}
    for name, score in scores.items():
        flat = _flat_scores({name: score}, None if eligible is None else {name: eligible[name]})
        out[name] = top_k_flat(flat, keep_count(keep_ratio, flat.numel())).view(score.shape)
    return out


SELECTIONS = {"global": global_topk, "layer": layerwise_topk}
