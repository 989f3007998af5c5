"""SEVEN's per-weight update in one pass over memory, bit-identical to `scores.seven_update_`.

The eager update is ~17 elementwise passes over every prunable weight, which on a ViT-B/32 tower made a
scoring step cost 3x a forward+backward. Here the same float32 operations, in the same order, run as two
C loops (`ckernels.py`: moments, then score), block by block. The square root between them stays torch's
`sqrt_`: on the CPU torch's vectorised sqrt is one ulp off the correctly rounded one for ~0.7% of inputs,
so no C sqrtf reproduces it. Tensors the loops do not cover (not float32, not contiguous, not on the CPU)
and machines without a C compiler take the eager update itself.
"""

from __future__ import annotations

import torch
from torch.autograd.graph import increment_version

from seven_bench.pruning import ckernels
from seven_bench.pruning.scores import SevenState, seven_update_

ABS_FIRST, USE_M, USE_V = 1, 2, 4
BLOCK = 1 << 16  # weights a block: 256 KB a stream, in L2


def covers(state: SevenState, w: torch.Tensor, g: torch.Tensor) -> bool:
    tensors = (state.m, state.v, state.score, w, g)
    return ckernels.on_cpu_float32(*tensors) and all(t.shape == w.shape for t in tensors)


def seven_update_fused_(
    state: SevenState,
    w: torch.Tensor,
    g: torch.Tensor,
    t: int,
    *,
    alpha1: float,
    alpha2: float,
    eps: float = 1e-9,
    first_moment: str = "abs",
    correction: str = "full",
) -> str:
    """`scores.seven_update_` in one pass where the C kernels cover the tensors, else that function itself;
    returns which ran ("fused_c" or "eager", the run record's `seven_update`).

    Block by block (BLOCK weights, in cache): moments (C), torch's sqrt_ of v_hat, score (C), so sqrt(v_hat)
    never goes to memory. One thread: the pass is bound by memory bandwidth, which one core nearly fills.
    The C kernels take the scalars as float, rounded from Python's doubles as torch rounds a Python float
    operand of a float32 op.
    """
    lib = ckernels.library()
    if lib is None or not covers(state, w, g):
        seven_update_(
            state, w, g, t, alpha1=alpha1, alpha2=alpha2, eps=eps, first_moment=first_moment, correction=correction
        )
        return "eager"
    flags = (ABS_FIRST if first_moment == "abs" else 0) | (USE_M if correction in ("full", "m_only") else 0)
    flags |= USE_V if correction in ("full", "v_only") else 0
    n = w.numel()
    u = torch.empty(min(n, BLOCK)) if flags & USE_V else None
    up = None if u is None else u.data_ptr()
    m, v, s, w, g = (x.detach().data_ptr() for x in (state.m, state.v, state.score, w, g))
    moments = (alpha1, 1.0 - alpha1, alpha2, 1.0 - alpha2, 1.0 - alpha2**t, flags)
    score = (1.0 - alpha1**t, eps, flags)
    for start in range(0, n, BLOCK):
        size, at = min(BLOCK, n - start), 4 * start  # float32: 4 bytes an element
        lib.seven_moments(m + at, v + at, up, g + at, size, *moments)
        if u is not None:
            (u if size == u.numel() else u[:size]).sqrt_()
        lib.seven_score(s + at, w + at, g + at, m + at, up, size, *score)
    for x in (state.m, state.v, state.score):
        increment_version(x)
    return "fused_c"
