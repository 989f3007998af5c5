"""Small C loops for the memory-bound passes of pruning, compiled at first use and loaded with ctypes.

Two jobs are pure memory traffic over every prunable weight and dominate a pruning step on the CPU once
the model is large: SEVEN's per-weight update (`fused_seven.py`: ~17 elementwise torch ops, each a full
pass over a tensor) and the global cut's comparison passes (`global_cut.py`: a masked copy of all scores,
then two comparisons). Each becomes one or two passes here. The floating-point operations are the eager
ones in the eager order, compiled with `-ffp-contract=off` (no FMA contraction; mul, add, div and the
comparisons are exact in IEEE 754), so every result has the eager bits and every mask is the same.
`target_clones` builds SSE2/AVX2/AVX-512 bodies and picks one at run time, so a cache on a shared file
system serves every node of a cluster; torch.compile fuses too, but not bit for bit.

The library is compiled once per source text into the user's cache (about a second with gcc) and loaded
with ctypes, which releases the GIL, so the chunks of a pass run on torch's thread count in parallel.
Without a C compiler (or with SEVEN_BENCH_FUSED=0) `library()` is None and callers take their torch route.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch
from torch.autograd.graph import increment_version

log = logging.getLogger(__name__)

CHUNK = 1 << 18  # elements per thread task: big enough to amortise the pool, small enough to balance

SOURCE = r"""
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

/* Moments of one SEVEN step; u <- v / c2 for torch's own sqrt (it is not correctly rounded, so only
   torch.sqrt_ reproduces the eager value). Each line is one eager op of scores.seven_update_, in order. */
CLONES void seven_moments(float *restrict m, float *restrict v, float *restrict u, const float *restrict g,
                          int64_t n, float a1, float b1, float a2, float b2, float c2, int flags) {
    for (int64_t i = 0; i < n; ++i) {
        float ga = fabsf(g[i]);
        float first = (flags & 1) ? ga : g[i];
        float mi = m[i] * a1 + first * b1;      /* m.mul_(a1).add_(first * (1 - a1)) */
        float vi = v[i] * a2 + (ga * ga) * b2;  /* v.mul_(a2).add_(|g|.square().mul_(1 - a2)) */
        m[i] = mi;
        v[i] = vi;
        if (flags & 4) u[i] = vi / c2;
    }
}

/* S <- S + |((|g| W) m_hat) / (sqrt(v_hat) + eps)|, with u = sqrt(v / c2) from torch. */
CLONES void seven_score(float *restrict s, const float *restrict w, const float *restrict g,
                        const float *restrict m, const float *restrict u, int64_t n, float c1, float eps,
                        int flags) {
    for (int64_t i = 0; i < n; ++i) {
        float step = fabsf(g[i]) * w[i];        /* |g|.mul_(W) */
        if (flags & 2) step = step * (m[i] / c1);
        if (flags & 4) step = step / (u[i] + eps);
        s[i] = s[i] + fabsf(step);
    }
}

/* One pass of the global cut (global_cut.py) over n scores, x = fill where elig[i] == 0 (elig may be NULL):
   above[i] = x > hi; the positions with lo < x <= hi go to cand, at most cap of them (cand has
   cap + 1 slots: the last takes the overflow). No branch on x > lo, a coin toss near the threshold.
   Returns how many candidates there are (more than cap: the caller calls again with room for all). */
CLONES int64_t cut_pass(const float *restrict s, const uint8_t *restrict elig, int64_t n, float fill, float lo,
                        float hi, uint8_t *restrict above, int64_t *restrict cand, int64_t cap,
                        int64_t *restrict n_above) {
    int64_t c = 0, a = 0;
    uint8_t mid[1024 + 8];
    for (int64_t base = 0; base < n; base += 1024) {
        int64_t len = n - base < 1024 ? n - base : 1024;
        const float *x = s + base;
        uint8_t *up = above + base;
        int32_t count = 0;
        /* vectorised (a select, not a branch, for the pruned entries): the mask, its count, candidate flags */
        if (elig != NULL) {
            const uint8_t *e = elig + base;
            for (int64_t i = 0; i < len; ++i) {
                float y = e[i] ? x[i] : fill;
                up[i] = y > hi;
                count += y > hi;
                mid[i] = (y > lo) & (y <= hi);
            }
        } else {
            for (int64_t i = 0; i < len; ++i) {
                up[i] = x[i] > hi;
                count += x[i] > hi;
                mid[i] = (x[i] > lo) & (x[i] <= hi);
            }
        }
        a += count;
        memset(mid + len, 0, 8);
        /* the candidates, eight flags at a time: most words are all zero (about 2% are candidates) */
        for (int64_t i = 0; i < len; i += 8) {
            uint64_t word;
            memcpy(&word, mid + i, 8);
            if (!word) continue;
            for (int64_t j = i; j < i + 8; ++j) {
                cand[c < cap ? c : cap] = base + j;
                c += mid[j];
            }
        }
    }
    *n_above = a;
    return c;
}

/* x.mul_(mask) for a bool mask: x * 1.0f or x * 0.0f, the eager op (so -0.0 and NaN come out alike). */
CLONES void mask_mul(float *restrict x, const uint8_t *restrict mask, int64_t n) {
    for (int64_t i = 0; i < n; ++i) x[i] = x[i] * (float)mask[i];
}
"""
FLAGS = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-fast-math", "-fPIC", "-shared"]


def _cache_dir() -> Path:
    root = os.environ.get("SEVEN_BENCH_KERNEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "seven_bench", "kernels"
    )
    return Path(root)


@lru_cache(maxsize=None)
def library() -> ctypes.CDLL | None:
    """Compile (once per source and flags) and load the kernels; None where no C compiler works."""
    if os.environ.get("SEVEN_BENCH_FUSED", "1") == "0":
        return None
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        log.info("no C compiler found: pruning passes run in torch (the same bits, slower)")
        return None
    digest = hashlib.sha256((SOURCE + " ".join(FLAGS) + compiler).encode()).hexdigest()[:16]
    target = _cache_dir() / f"pruning_{digest}.so"
    if not target.exists():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                src, out = Path(tmp) / "pruning.c", Path(tmp) / "lib.so"
                src.write_text(SOURCE)
                subprocess.run([compiler, *FLAGS, str(src), "-o", str(out), "-lm"], check=True, capture_output=True)
                os.replace(out, target)  # atomic: concurrent cells of a sweep never load half a file
        except (OSError, subprocess.CalledProcessError) as err:
            detail = getattr(err, "stderr", b"") or b""
            log.warning("compiling the pruning kernels failed (%s %s): torch route", err, detail.decode()[-300:])
            return None
    lib = ctypes.CDLL(str(target))
    f = ctypes.c_float
    ptr, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    lib.seven_moments.argtypes = [ptr] * 4 + [i64, f, f, f, f, f, i32]
    lib.seven_score.argtypes = [ptr] * 5 + [i64, f, f, i32]
    lib.seven_moments.restype = lib.seven_score.restype = None
    lib.cut_pass.argtypes = [ptr, ptr, i64, f, f, f, ptr, ptr, i64, ptr]
    lib.cut_pass.restype = i64
    lib.mask_mul.argtypes = [ptr, ptr, i64]
    lib.mask_mul.restype = None
    return lib


@lru_cache(maxsize=None)
def pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pruning-kernel")


def kernel_name() -> str:
    """'fused_c' where the C kernels load here, else 'eager' (recorded in each run's pruner section)."""
    return "fused_c" if library() is not None else "eager"


def on_cpu_float32(*tensors: torch.Tensor) -> bool:
    return all(t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous() for t in tensors)


def parallel(
    kernel: Callable[..., Any], buffers: tuple[int | None, ...], n: int, scalars: tuple, sizes: tuple[int, ...] = ()
) -> None:
    """Run an elementwise `kernel(*buffers, n, *scalars)` over [0, n) in contiguous chunks on torch's thread
    count (ctypes releases the GIL); `sizes`: each buffer's bytes an element (float32 where not given)."""
    threads = max(1, torch.get_num_threads())
    if threads == 1 or n <= CHUNK:
        kernel(*buffers, n, *scalars)
        return
    step = max(CHUNK, -(-n // threads))
    jobs: list[Future] = []
    for start in range(0, n, step):
        offset = [None if p is None else p + (sizes[j] if sizes else 4) * start for j, p in enumerate(buffers)]
        jobs.append(pool(threads).submit(kernel, *offset, min(step, n - start), *scalars))
    for job in jobs:
        job.result()


@torch.no_grad()
def mask_mul_(x: torch.Tensor, mask: torch.Tensor) -> None:
    """`x.mul_(mask)` with a bool mask, in one pass and without torch's float copy of the mask."""
    lib = library()
    if lib is None or not on_cpu_float32(x) or mask.dtype != torch.bool or mask.shape != x.shape:
        x.mul_(mask)
        return
    mask = mask.contiguous()
    parallel(lib.mask_mul, (x.data_ptr(), mask.data_ptr()), x.numel(), (), sizes=(4, 1))
    increment_version(x)  # as an in-place torch op would: autograd sees that x changed
