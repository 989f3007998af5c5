"""`make bench`, C kernels: each memory-bound pruning pass against its torch route, side by side in one run.

On BERT-base-sized score sets (ViT-B/32's 48 prunable matrices, 84.9M weights, random values): SEVEN's
per-weight update (fused C vs the eager torch ops, the same bits) and a no-resurrection global cut at 40%
kept after 50% were pruned (the C comparison pass vs torch's masked copy and two comparisons, the same
masks). Interleaved repeats, medians; the ratio is the product.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any, Callable

import torch

from seven_bench.pruning import ckernels
from seven_bench.pruning.fused_seven import seven_update_fused_
from seven_bench.pruning.scores import SevenState
from seven_bench.pruning.selection import global_topk

VIT_SHAPES = [(2304, 768), (768, 768), (3072, 768), (768, 3072)] * 12  # qkv, out, fc1, fc2 of 12 blocks


def _routes(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median seconds of `fn` on the C route and on the torch route, interleaved."""
    times: dict[str, list[float]] = {"c": [], "torch": []}
    try:
        for _ in range(repeats + 1):
            for route in ("c", "torch"):
                os.environ["SEVEN_BENCH_FUSED"] = "1" if route == "c" else "0"
                ckernels.library.cache_clear()
                start = time.perf_counter()
                fn()
                times[route].append(time.perf_counter() - start)
    finally:
        os.environ.pop("SEVEN_BENCH_FUSED", None)
        ckernels.library.cache_clear()
    return statistics.median(times["c"][1:]), statistics.median(times["torch"][1:])


def bench_kernels(repeats: int) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(0)
    weights = [torch.randn(s, generator=gen) for s in VIT_SHAPES]
    grads = [torch.randn(s, generator=gen) for s in VIT_SHAPES]
    states = [SevenState.zeros_like(w) for w in weights]
    step = iter(range(1, 10_000))

    def update() -> None:
        t = next(step)
        for state, w, g in zip(states, weights, grads):
            seven_update_fused_(state, w, g, t, alpha1=0.8, alpha2=0.9)

    scores = {f"w{i}": s.score for i, s in enumerate(states)}
    update()
    eligible = global_topk(scores, 0.5, None, "floor_ties")
    update_c, update_torch = _routes(update, repeats)
    cut_c, cut_torch = _routes(lambda: global_topk(scores, 0.4, eligible, "floor_ties"), repeats)
    return {
        "weights": sum(w.numel() for w in weights),
        "update_c_s": update_c,
        "update_torch_s": update_torch,
        "update_speedup": update_torch / update_c,
        "cut_c_s": cut_c,
        "cut_torch_s": cut_torch,
        "cut_speedup": cut_torch / cut_c,
        "kernels": ckernels.kernel_name(),
    }
