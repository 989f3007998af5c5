"""The fused SEVEN update must give the eager update's bits: state, score, and so every mask and tie."""

from __future__ import annotations

import itertools

import pytest
import torch

from seven_bench.pruning import ckernels, fused_seven
from seven_bench.pruning.criteria import Seven, describe
from seven_bench.pruning.scores import SevenState, seven_update_

pytestmark = pytest.mark.skipif(ckernels.kernel_name() != "fused_c", reason="no C compiler here")


def _wide_range(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    """Normal values spread over many decades (subnormal to huge), where rounding differences would show."""
    scale = torch.logspace(low, high, n)[torch.randperm(n, generator=gen)]
    return torch.randn(n, generator=gen) * scale


def _run(update, w: torch.Tensor, grads: list[torch.Tensor], **kw) -> SevenState:
    state = SevenState.zeros_like(w)
    for t, g in enumerate(grads, 1):
        update(state, w, g, t, **kw)
    return state


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.view(torch.int32), b.view(torch.int32))


@pytest.mark.parametrize("n", [1, 7, 1000, fused_seven.BLOCK * 2 + 3])  # the last one: three blocks
def test_fused_matches_eager_bit_for_bit(n: int) -> None:
    gen = torch.Generator().manual_seed(n)
    w = _wide_range(n, -30, 10, gen)
    w[::97] = 0.0
    grads = [_wide_range(n, -38, 5, gen) for _ in range(3)]
    grads[1][::13] = 0.0
    grads[2][::17] = 1e-45  # subnormal gradients
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for first, corr, (a1, a2) in itertools.product(
            ("abs", "signed"), ("full", "m_only", "v_only", "none"), ((0.85, 0.95), (0.5, 0.3))
        ):
            kw = dict(alpha1=a1, alpha2=a2, eps=1e-9, first_moment=first, correction=corr)
            eager, fused = _run(seven_update_, w, grads, **kw), _run(fused_seven.seven_update_fused_, w, grads, **kw)
            for name in ("m", "v", "score"):
                assert _same_bits(getattr(eager, name), getattr(fused, name)), (n, first, corr, a1, name)
    finally:
        torch.set_num_threads(threads)


def test_hand_computed_step() -> None:
    """t=1, a1=0.5, a2=0.75: m = 0.5|g|, v = 0.25 g^2, m_hat = |g|, sqrt(v_hat) = |g|: S = |W g| * |g| / (|g| + eps)."""
    w, g = torch.tensor([2.0, -3.0, 0.0]), torch.tensor([-4.0, 1.0, 5.0])
    state = SevenState.zeros_like(w)
    fused_seven.seven_update_fused_(state, w, g, 1, alpha1=0.5, alpha2=0.75, eps=0.0)
    assert state.m.tolist() == [2.0, 0.5, 2.5]
    assert state.v.tolist() == [4.0, 0.25, 6.25]
    assert state.score.tolist() == [8.0, 3.0, 0.0]


def test_uncovered_tensors_take_the_eager_path() -> None:
    """float64 or strided tensors are not the kernel's: the eager update runs and gives its own result."""
    w = torch.randn(6, 4, dtype=torch.float64)
    g = torch.randn(6, 4, dtype=torch.float64)
    a, b = SevenState.zeros_like(w), SevenState.zeros_like(w)
    seven_update_(a, w, g, 1, alpha1=0.85, alpha2=0.95)
    fused_seven.seven_update_fused_(b, w, g, 1, alpha1=0.85, alpha2=0.95)
    assert torch.equal(a.score, b.score)
    wt, gt = torch.randn(4, 6).t(), torch.randn(4, 6).t()
    assert not fused_seven.covers(SevenState.zeros_like(wt), wt, gt)


def test_switched_off_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEVEN_BENCH_FUSED", "0")
    ckernels.library.cache_clear()
    try:
        assert ckernels.kernel_name() == "eager"
        assert describe(Seven(0.85, 0.95)) == {"seven_update": "eager"}
    finally:
        monkeypatch.delenv("SEVEN_BENCH_FUSED")
        ckernels.library.cache_clear()
    assert describe(Seven(0.85, 0.95)) == {"seven_update": "fused_c"}


def test_mask_mul_is_the_eager_op() -> None:
    """x * 1.0 / x * 0.0 per entry, signed zeros, inf and NaN included; autograd sees the change."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(ckernels.CHUNK * 2 + 5, generator=gen)
    x[:4] = torch.tensor([float("inf"), float("-inf"), float("nan"), -0.0])
    mask = torch.rand(x.shape, generator=gen) > 0.5
    mask[:4] = False
    want, got = x.clone().mul_(mask), x.clone()
    version = got._version
    ckernels.mask_mul_(got, mask)
    assert _same_bits(got, want) and got._version > version


def test_the_record_names_the_route_that_ran() -> None:
    """Tensors the kernels do not take (float64 here, a GPU's elsewhere) are recorded as eager."""
    criterion = Seven(0.85, 0.95)
    w = {"a": torch.randn(4, 4, dtype=torch.float64)}
    criterion.update(1, w, {"a": torch.randn(4, 4, dtype=torch.float64)})
    assert describe(criterion) == {"seven_update": "eager"}
    criterion.update(1, {"b": torch.randn(3)}, {"b": torch.randn(3)})
    assert describe(criterion) == {"seven_update": "eager+fused_c"}
