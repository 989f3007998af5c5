"""The exact global cut over many large score tensors, without concatenating them.

One threshold over BERT-base's 85M prunable weights is a memory-bound job: every full pass over the
scores costs about as much as the arithmetic. So the cut brackets the threshold with quantiles of a small
random sample, then makes one pass per tensor that writes the `> hi` mask and lists the positions in
(lo, hi] (about 2% of them; a C loop, `ckernels.cut_pass`, where it loads, else two torch comparisons).
The exact threshold is a `kthvalue` over those candidates alone, and the final masks are the `> hi` masks
plus their positions, so no 342 MB copy of all scores is needed. Entries that may not be chosen (already
pruned, no resurrection) count as `fill`, read from the mask during the pass instead of from a filled copy.
When the sample's bracket misses, None is returned and the caller falls back to one concatenated buffer.
The tie rules are those of `selection.select_flat`: `first` keeps exactly k (ties to the lowest index over
the tensors in order), `all` keeps every entry equal to the threshold.
"""

from __future__ import annotations

import ctypes
from typing import Any

import torch

from seven_bench.pruning import ckernels

SAMPLE = 262_144  # sample size for the bracket; the candidate set is about n * 12 / sqrt(SAMPLE)
Parts = list[torch.Tensor]


def filled(score: torch.Tensor, eligible: torch.Tensor | None, fill: float) -> torch.Tensor:
    """The score as the cut sees it: `fill` where the entry may not be chosen."""
    return score if eligible is None else score.masked_fill(~eligible, fill)


def bracket(parts: Parts, kth: int, eligible: Parts | None = None, fill: float = 0.0) -> tuple[Any, Any, float]:
    """(lo, hi) around the kth largest of all `parts`, from quantiles of a small sample, and the sample's share
    in (lo, hi]: exactness never depends on them (callers check their counts and fall back when the bracket
    misses).

    The sample is drawn at seeded random positions, not with a stride: scores have the structure of their
    weight matrices (SEVEN's and SNIP's follow each input feature's activation scale), and a stride of
    n / SAMPLE = 324 over BERT-base's 768-wide rows sees only 64 of the columns; on a ViT-B/32 tower that
    bias put the bracket 1.5M entries off and sent every cut to the 2 s one-buffer fallback.
    """
    n = sum(p.numel() for p in parts)
    gen = torch.Generator(device=parts[0].device).manual_seed(0)
    picks = []
    for j, p in enumerate(parts):
        count = min(p.numel(), max(1, round(SAMPLE * p.numel() / n)))
        at = torch.randint(p.numel(), (count,), generator=gen, device=p.device)
        picks.append(filled(p[at], None if eligible is None else eligible[j][at], fill))
    sample = torch.cat(picks).sort().values
    size = sample.numel()
    rank = (n - kth) / n  # ascending position of the threshold, as a fraction
    margin = 6.0 / size**0.5
    lo = sample[max(0, int((rank - margin) * size))]
    hi = sample[min(size - 1, int((rank + margin) * size) + 1)]
    return lo, hi, float(((sample > lo) & (sample <= hi)).float().mean())


Pass = tuple[torch.Tensor, torch.Tensor, int]  # the `> hi` mask, the positions in (lo, hi], the count above


def _pass_torch(p: torch.Tensor, e: torch.Tensor | None, fill: float, lo, hi) -> Pass:
    p = filled(p, e, fill)
    above = p > hi
    # hi >= lo, so `> hi` implies `> lo`: the entries in (lo, hi] are (> lo) xor (> hi), computed in place
    return above, (p > lo).logical_xor_(above).nonzero().squeeze(1), int(torch.count_nonzero(above))


def _pass_c(p: torch.Tensor, e: torch.Tensor | None, fill: float, lo: float, hi: float, share: float) -> Pass:
    """`_pass_torch` in one read of the scores (and the eligibility mask); called on a worker thread."""
    lib = ckernels.library()
    above = torch.empty(p.shape, dtype=torch.bool)
    cap = min(p.numel(), int(p.numel() * min(1.0, 3.0 * share + 1e-3)) + 64)
    n_above = ctypes.c_int64()
    eptr = None if e is None else e.data_ptr()
    while True:
        index = torch.empty(cap + 1, dtype=torch.int64)
        found = lib.cut_pass(
            p.data_ptr(), eptr, p.numel(), fill, lo, hi, above.data_ptr(), index.data_ptr(), cap,
            ctypes.byref(n_above),
        )  # fmt: skip
        if found <= cap:
            return above, index[:found], n_above.value
        cap = found  # the sample underestimated (lo, hi]: once more with room for every candidate


def comparison_pass(parts: Parts, masks: list, fill: float, lo, hi, share: float) -> tuple[Parts, Parts, int]:
    """Per tensor (`masks`: its eligibility or None): the `> hi` mask and the positions in (lo, hi], on
    torch's threads (C) or in torch."""
    if ckernels.library() is None or not all(ckernels.on_cpu_float32(p) for p in parts):
        out = [_pass_torch(p, e, fill, lo, hi) for p, e in zip(parts, masks)]
    else:
        args = (fill, float(lo), float(hi), share)
        pool = ckernels.pool(max(1, torch.get_num_threads()))
        jobs = [pool.submit(_pass_c, p, None if e is None else e.contiguous(), *args) for p, e in zip(parts, masks)]
        out = [job.result() for job in jobs]
    return [a for a, _, _ in out], [i for _, i, _ in out], sum(c for _, _, c in out)


def cut(parts: Parts, kth: int, ties: str, eligible: Parts | None = None, fill: float = 0.0) -> Parts | None:
    """Masks keeping the kth largest entries of the 1-D `parts` together (1 <= kth < n), or None.

    The candidates are the entries in (lo, hi], not [lo, hi]: entries equal to lo are only counted, because
    lo is often a value shared by millions (the fill of already pruned entries, 0 or -inf, once a
    no-resurrection schedule has cut a third of the model), and gathering those made one cut 5x slower.
    When the threshold is lo itself, the entries at lo are the ties.
    """
    masks = eligible or [None] * len(parts)
    lo, hi, share = bracket(parts, kth, eligible, fill)
    above, index, n_above = comparison_pass(parts, masks, fill, lo, hi, share)
    if n_above >= kth:
        return None
    values = [filled(p[i], None if e is None else e[i], fill) for p, e, i in zip(parts, masks, index)]
    n_between = sum(v.numel() for v in values)
    if kth > n_above + n_between:
        return _cut_at(parts, masks, above, index, kth - n_above - n_between, lo, fill, ties)
    between = torch.cat(values)
    threshold = torch.kthvalue(between, n_between - (kth - n_above) + 1).values
    missing = kth - n_above - int(torch.count_nonzero(between > threshold))
    for mask, i, v in zip(above, index, values):
        mask[i[v > threshold]] = True
        tied = i[v == threshold]
        if ties == "all":
            mask[tied] = True
        elif missing > 0:
            mask[tied[:missing]] = True
            missing -= min(missing, tied.numel())
    return above


def _cut_at(parts, masks, above: Parts, index: Parts, missing: int, lo, fill: float, ties: str) -> Parts | None:
    """The threshold is lo: keep everything above it, then `missing` of the entries equal to lo (the first
    in index order) or all of them; None when fewer than `missing` equal lo (the bracket missed)."""
    at_lo = [filled(p, e, fill) == lo for p, e in zip(parts, masks)]
    if sum(int(torch.count_nonzero(t)) for t in at_lo) < missing:
        return None
    for mask, i, tied in zip(above, index, at_lo):
        mask[i] = True
        if ties == "all":
            mask |= tied
        elif missing > 0:
            count = int(torch.count_nonzero(tied))
            if count <= missing:
                mask |= tied
            else:
                mask[tied.nonzero().squeeze(1)[:missing]] = True
            missing -= min(missing, count)
    return above
