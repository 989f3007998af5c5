import math

import pytest
import torch

from seven_bench.pruning.schedules import cubic, exponential, linear, one_shot, seven_cubic
from seven_bench.pruning.selection import global_topk, keep_count, layerwise_topk, top_k_flat


def test_exponential_schedule_is_geometric_and_ends_at_target():
    d, n = 0.4, 4
    values = [exponential(d, t, n) for t in range(1, n + 1)]
    assert values[-1] == pytest.approx(0.4)
    assert values[0] == pytest.approx(0.4**0.25)  # 0.79527...
    assert values[1] == pytest.approx(math.sqrt(0.4))
    ratios = [b / a for a, b in zip(values, values[1:])]
    assert ratios == pytest.approx([0.4**0.25] * 3)


def test_linear_and_one_shot():
    assert [linear(0.2, t, 4) for t in (1, 2, 4)] == pytest.approx([0.8, 0.6, 0.2])
    assert one_shot(0.3, 1, 1) == 0.3


def test_seven_cubic_boundaries():
    d, T = 0.5, 10
    assert seven_cubic(d, 0, T) == pytest.approx(0.5 + 0.5 * 0.9**3)
    # the code's last step is k = T-2: the target is missed by (1-d)(1/T)^3
    assert seven_cubic(d, T - 2, T) == pytest.approx(0.5 + 0.5 * 0.001)
    assert seven_cubic(d, T - 1, T) == pytest.approx(0.5)


def test_cubic_with_warmups():
    kw = dict(total_steps=100, initial_warmup_steps=10, final_warmup_steps=20, initial_ratio=1.0, final_ratio=0.1)
    assert cubic(0, **kw) == 1.0 and cubic(10, **kw) == 1.0
    assert cubic(11, **kw) == pytest.approx(0.1 + 0.9 * (1 - 1 / 70) ** 3)
    assert cubic(45, **kw) == pytest.approx(0.1 + 0.9 * 0.5**3)
    assert cubic(80, **kw) == pytest.approx(0.1)
    assert cubic(81, **kw) == 0.1 and cubic(100, **kw) == 0.1


def test_global_topk_breaks_ties_by_position_for_an_exact_count():
    scores = {"a": torch.tensor([1.0, 2.0, 2.0, 2.0]), "b": torch.tensor([2.0, 0.0])}
    masks = global_topk(scores, 0.5)
    assert masks["a"].tolist() == [False, True, True, True]
    assert masks["b"].tolist() == [False, False]


def test_global_topk_is_global_not_per_layer():
    scores = {"a": torch.tensor([[10.0, 9.0], [8.0, 7.0]]), "b": torch.tensor([1.0, 2.0, 3.0, 4.0])}
    masks = global_topk(scores, 0.5)
    assert masks["a"].all() and not masks["b"].any()
    local = layerwise_topk(scores, 0.5)
    assert local["a"].sum() == 2 and local["b"].tolist() == [False, False, True, True]


def test_ineligible_entries_are_never_chosen_again():
    scores = {"a": torch.tensor([5.0, 4.0, 3.0, 2.0])}
    eligible = {"a": torch.tensor([False, True, True, True])}
    assert global_topk(scores, 0.5, eligible)["a"].tolist() == [False, True, True, False]


@pytest.mark.parametrize("n,ratio", [(1000, 0.4), (1001, 0.123), (77, 0.9999), (10, 0.0), (10, 1.0)])
def test_exact_count_on_random_scores_with_many_ties(n, ratio):
    flat = torch.randint(0, 5, (n,)).float()  # heavy ties
    mask = top_k_flat(flat, keep_count(ratio, n))
    assert int(mask.sum()) == keep_count(ratio, n)
    if 0 < mask.sum() < n:
        assert flat[mask].min() >= flat[~mask].max()
