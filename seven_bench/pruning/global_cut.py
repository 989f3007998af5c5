"""The exact global cut over many large score tensors, without concatenating them.

One threshold over BERT-base's 85M prunable weights is a memory-bound job: every full pass over the
scores costs about as much as the arithmetic. So the cut brackets the threshold with quantiles of a small
strided sample, then makes two comparison passes per tensor (`> hi`, `>= lo`); the few entries between
the bracket's ends (about 2% of them) are gathered by index, the exact threshold is a `kthvalue` over
them alone, and the final masks are the `> hi` masks plus those indices, so no third pass and no 342 MB
copy of all scores is needed. When the sample's bracket misses, None is returned and the caller falls back
to one concatenated buffer. The tie rules are those of `selection.select_flat`: `first` keeps exactly k
(ties to the lowest index over the tensors in order), `all` keeps every entry equal to the threshold.
"""

from __future__ import annotations

import torch

SAMPLE = 262_144  # sample size for the bracket; the candidate set is about n * 12 / sqrt(SAMPLE)


def bracket(parts: list[torch.Tensor], kth: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi) around the kth largest of all `parts`, from quantiles of a strided sample: exactness never
    depends on it (callers check their counts and fall back when the bracket misses)."""
    n = sum(p.numel() for p in parts)
    stride = max(1, n // SAMPLE)
    sample = torch.cat([p[::stride] for p in parts]).sort().values
    size = sample.numel()
    rank = (n - kth) / n  # ascending position of the threshold, as a fraction
    margin = 6.0 / size**0.5
    return sample[max(0, int((rank - margin) * size))], sample[min(size - 1, int((rank + margin) * size) + 1)]


def cut(parts: list[torch.Tensor], kth: int, ties: str) -> list[torch.Tensor] | None:
    """Masks keeping the kth largest entries of the 1-D `parts` together (1 <= kth < n), or None."""
    lo, hi = bracket(parts, kth)
    above = [p > hi for p in parts]
    n_above = sum(int(torch.count_nonzero(a)) for a in above)
    # hi >= lo, so `> hi` implies `>= lo`: the entries in [lo, hi] are (>= lo) xor (> hi), computed in place
    index = [(p >= lo).logical_xor_(a).nonzero().squeeze(1) for p, a in zip(parts, above)]
    values = [p[i] for p, i in zip(parts, index)]
    n_between = sum(v.numel() for v in values)
    if not n_above < kth <= n_above + n_between:
        return None
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
