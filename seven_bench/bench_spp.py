"""`make bench`, SPP row: one search step (scales only, weights frozen, Bregman update) against a dense
training step (every weight trained, the pre-pruning recipe's AdamW) on the same batch, two model copies,
interleaved; plus the search's persistent state as a multiple of the prunable weights' bytes."""

from __future__ import annotations

import copy
import itertools
import statistics
import time
from typing import Any

from seven_bench.pruning.base import PruneContext, Pruner
from seven_bench.pruning.spp_search import SearchSettings, SppSearch, lambda_for_length
from seven_bench.pruning.structure_gates import bert_layers
from seven_bench.train import build_optimizer, build_scheduler, train_step


def _seconds(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_spp(bundle: Any, num_labels: int, batches: list[dict[str, Any]], repeats: int) -> dict[str, Any]:
    from seven_bench.recipes import RECIPES

    settings = dict(RECIPES["bert_pre"])
    dense_model, search_model = copy.deepcopy(bundle.model), copy.deepcopy(bundle.model)
    prunable = {n: p for n, p in dense_model.named_parameters() if n in bundle.prunable}
    ctx = PruneContext(dense_model, prunable, itertools.cycle(batches), num_labels, total_steps=10 * repeats, seed=0)
    dense = Pruner(1.0)
    opt = build_optimizer(dense_model, [], settings)
    sched = build_scheduler(opt, settings, 10 * repeats)
    steps = 10 * repeats
    search_settings = SearchSettings(
        steps, 1e-3, (0.9, 0.999), 1e-4, 1.0, lambda_for_length(steps, 1e-3, 0.9, 1.0, 0.333), 10, "none", 0.0, 0.0
    )
    layers = bert_layers(search_model, {n: p for n, p in search_model.named_parameters() if n in bundle.prunable})
    search = SppSearch(search_model, layers, search_settings, num_labels)
    dense_model.train()
    search_model.train()
    times: dict[str, list[float]] = {"dense": [], "search": []}
    for step in range(repeats + 1):
        b = batches[step % len(batches)]
        dense_s = _seconds(lambda b=b, step=step: train_step(ctx, dense, opt, sched, b, step, None))
        search_s = _seconds(lambda b=b: search.step(b))
        if step > 0:  # the first pair warms caches and allocates optimizer state
            times["dense"].append(dense_s)
            times["search"].append(search_s)
    state = sum(t.numel() * t.element_size() for d in (search.z, search.gamma, search.step_record) for t in d.values())
    state += sum(p.numel() * p.element_size() for p in search.gates.parameters()) * 3  # scales + Adam's m, v
    search.close()
    prunable_bytes = sum(p.numel() * p.element_size() for p in prunable.values())
    return {
        "pruner": "spp (search step)",
        "plain_s": statistics.median(times["dense"]),
        "step_s": statistics.median(times["search"]),
        "ratio": statistics.median(times["search"]) / statistics.median(times["dense"]),
        "state_x": state / prunable_bytes,
    }
