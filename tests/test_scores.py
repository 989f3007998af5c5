"""SEVEN, SNIP and GraSP formulas against values computed by hand."""

import math

import pytest
import torch

from seven_bench.pruning import scores
from seven_bench.pruning.base import PruneContext
from seven_bench.pruning.scores import SevenState, seven_update_
from tests.conftest import ToyModel


def _seven(gs, w, **kw):
    state = SevenState.zeros_like(w)
    for t, g in enumerate(gs, start=1):
        seven_update_(state, w, g, t, **kw)
    return state


def test_seven_two_steps_by_hand():
    w = torch.tensor([2.0, -1.0])
    g1, g2 = torch.tensor([0.5, -1.0]), torch.tensor([1.5, 1.0])
    state = _seven([g1, g2], w, alpha1=0.5, alpha2=0.5, eps=0.0)
    # element 0. t=1: m=.25 v=.125 m_hat=.5 v_hat=.5 -> c=1, s=|2*.5|=1.
    # t=2: m=.875 v=1.1875 m_hat=.875/.75 v_hat=sqrt(1.1875/.75) -> s=3*c
    c = (0.875 / 0.75) / math.sqrt(1.1875 / 0.75)
    assert state.m.tolist() == pytest.approx([0.875, 0.75])
    assert state.v.tolist() == pytest.approx([1.1875, 0.75])
    assert state.score[0].item() == pytest.approx(1.0 + 3.0 * c)
    # element 1 (|g| constant at 1): c = 1 at both steps, S = 1 + 1
    assert state.score[1].item() == pytest.approx(2.0)


def test_seven_signed_first_moment_punishes_sign_flips():
    w = torch.tensor([-1.0])
    gs = [torch.tensor([-1.0]), torch.tensor([1.0])]
    signed = _seven(gs, w, alpha1=0.5, alpha2=0.5, eps=0.0, first_moment="signed")
    # t=2: m = .5*(-.5) + .5*1 = .25, m_hat = 1/3, v_hat = 1 -> s = 1/3; S = 1 + 1/3
    assert signed.score.item() == pytest.approx(1.0 + 1.0 / 3.0)
    assert _seven(gs, w, alpha1=0.5, alpha2=0.5, eps=0.0).score.item() == pytest.approx(2.0)


def test_seven_eps_is_added_after_the_square_root():
    w, g = torch.tensor([1.0]), torch.tensor([1e-12])
    state = _seven([g], w, alpha1=0.8, alpha2=0.9, eps=1e-9)
    m_hat, v_hat = 1e-12, math.sqrt(1e-24) + 1e-9
    assert state.score.item() == pytest.approx(1e-12 * m_hat / v_hat, rel=1e-5)


@pytest.mark.parametrize("correction,expected", [("none", 3.0), ("m_only", 3.0 * 1.5), ("v_only", 3.0 / 1.5)])
def test_seven_ablations(correction, expected):
    # one step, alpha 0 -> m_hat = |g| = 1.5, v_hat = |g| = 1.5; |W g| = 3
    state = _seven([torch.tensor([1.5])], torch.tensor([2.0]), alpha1=0.0, alpha2=0.0, eps=0.0, correction=correction)
    assert state.score.item() == pytest.approx(expected)


def test_snip_and_magnitude():
    w, g = torch.tensor([[1.0, -2.0]]), torch.tensor([[-3.0, 0.5]])
    assert scores.snip(w, g).tolist() == [[3.0, 1.0]]
    assert scores.magnitude(w).tolist() == [[1.0, 2.0]]


def test_grasp_hessian_gradient_product_and_sign_by_hand():
    # L = (w.x - y)^2 (MSE, one example): g = 2 r x, H = 2 x x^T, Hg = 4 r (x.x) x with r = w.x - y
    w = torch.tensor([[1.0, -2.0, 0.5]])
    x, y = torch.tensor([[1.0, 2.0, -1.0]]), torch.tensor([0.5])
    model = ToyModel(w)
    ctx = PruneContext(model, {"lin.weight": model.lin.weight}, iter([]), num_labels=1, total_steps=1, seed=0)
    hg = ctx.hessian_gradient([{"x": x, "labels": y}], temperature=200.0)["lin.weight"]
    r = (w @ x.T).item() - 0.5  # -4.0
    expected = 4 * r * (x @ x.T).item() * x
    assert hg.flatten().tolist() == pytest.approx([-96.0, -192.0, 96.0])
    assert hg.flatten().tolist() == pytest.approx(expected.flatten().tolist())
    keep = scores.grasp_keep(w, hg)
    # GraSP removes the largest -W*Hg, i.e. keeps the largest W*Hg
    assert keep.flatten().tolist() == pytest.approx([-96.0, 384.0, 48.0])
    assert torch.argmax(keep).item() == torch.argmin(-w * expected).item()
