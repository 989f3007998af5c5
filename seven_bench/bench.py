"""`make bench`: what pruning costs, measured side by side in one run (ratios, never absolute targets).

1. Pre-pruners on MiniLM + real RTE batches: one scoring step (signal, criterion update, global cut,
   mask applied) against a plain forward+backward on the same batch, interleaved; and the pruner's
   persistent state as a multiple of the prunable weights' bytes.
2. Dyn pruners on MiniLM: a full training step with the pruner active against a dense training step
   (same batch, same optimizer, two model copies, interleaved), and the pruner state's bytes.
   SPP: one search step (scales only, weights frozen) against a dense training step (bench_spp.py).
3. Global selection on 85M scores (BERT-base's prunable set), tensor by tensor, against the same cut on one
   concatenated buffer and a full sort.
4. SEVEN-pre's scoring-step ratio on a ViT-B/32-sized visual tower (random weights), as in 1, and the C
   kernels (bench_kernels.py) against their torch routes: SEVEN's update and a no-resurrection global cut.
5. The lottery family (bench_lottery.py): a 3-sparsity LTH sweep's optimizer steps with the shared IMP path
   against one path per cell, and the time a killed multi-round cell (or fine-tune) takes to get back.

Median of the interleaved repeats; the ratios are the product, the seconds are context for this machine.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from rich.console import Console
from rich.table import Table

from seven_bench.pruning.base import PruneContext, Pruner
from seven_bench.pruning.pre import PrePruner
from seven_bench.pruning.registry import PRUNERS
from seven_bench.pruning.selection import global_topk, select_flat
from seven_bench.train import build_optimizer, build_scheduler, train_step

PRE_PRUNERS = {
    "snip": {"num_batches": 1},
    "grasp": {"samples_per_class": 10, "temperature": 200.0},
    "iter_snip": {"schedule": "exponential", "num_steps": 10, "num_batches": 1},
    "force": {"schedule": "exponential", "num_steps": 10, "num_batches": 1},
    "seven_pre": {
        "num_batches": 10,
        "alpha1": 0.8,
        "alpha2": 0.9,
        "eps": 1e-9,
        "first_moment": "abs",
        "correction": "full",
        "resurrection": False,
        "schedule": "exponential",
    },
}
DYN_PRUNERS = ("seven_dyn", "platon", "movement", "dsp")  # dsp: joint search step (gates on, K = half the heads)
BERT_BASE_SHAPES = [(768, 768)] * 4 + [(3072, 768), (768, 3072)]


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def tensor_bytes(obj: Any, exclude: set[int], seen: set[int] | None = None) -> int:
    """Bytes of the distinct tensors an object holds (dicts, lists, dataclasses, attributes), minus
    `exclude` (the model's own parameters): the pruner's persistent state."""
    seen = set() if seen is None else seen
    if torch.is_tensor(obj):
        ptr = obj.untyped_storage().data_ptr()
        if ptr in seen or ptr in exclude:
            return 0
        seen.add(ptr)
        return obj.untyped_storage().nbytes()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v, exclude, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v, exclude, seen) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sum(tensor_bytes(getattr(obj, f.name), exclude, seen) for f in dataclasses.fields(obj))
    if hasattr(obj, "__dict__") and not isinstance(obj, (torch.nn.Module, type)):
        return sum(tensor_bytes(v, exclude, seen) for k, v in vars(obj).items() if k != "batches")
    return 0


def _prunable_bytes(ctx: PruneContext) -> int:
    return sum(p.numel() * p.element_size() for p in ctx.prunable.values())


def _param_ptrs(model: torch.nn.Module) -> set[int]:
    return {p.untyped_storage().data_ptr() for p in model.parameters()}


def minilm_setup(batch_size: int) -> tuple[Any, Any, list[dict[str, Any]]]:
    from torch.utils.data import DataLoader

    from seven_bench.models import MODELS
    from seven_bench.sources import data_root
    from seven_bench.tasks import TASKS

    task = TASKS.get("rte")
    torch.manual_seed(0)
    bundle = MODELS.get("minilm").build({"name": "minilm", "prune_pooler": True}, task.info, torch.device("cpu"))
    data = task.load({"name": "rte", "max_length": 128}, data_root(), bundle)
    loader = DataLoader(
        data.train,
        batch_size=batch_size,
        shuffle=True,
        collate_fn=data.collate,
        generator=torch.Generator().manual_seed(0),
    )
    return bundle, task, list(itertools.islice(iter(loader), 4))


def bench_pre(
    model: torch.nn.Module,
    prunable: dict[str, torch.nn.Parameter],
    batches: list[dict[str, Any]],
    num_labels: int,
    names: list[str],
    repeats: int,
) -> list[dict[str, Any]]:
    """Interleave plain forward+backward and one scoring step of each pre-pruner on the same batches."""
    rows = []
    original = {n: p.detach().clone() for n, p in prunable.items()}
    for name in names:
        with torch.no_grad():
            for n, p in prunable.items():
                p.copy_(original[n])
        stream: Iterator[dict[str, Any]] = itertools.cycle(batches)
        ctx = PruneContext(model, prunable, stream, num_labels, total_steps=1, seed=0)
        pruner = PRUNERS.get(name).build(PRE_PRUNERS[name], 0.4, 0)
        assert isinstance(pruner, PrePruner)
        pruner.steps = max(pruner.steps, repeats + 1)
        pruner.start(ctx)
        plain, scored = [], []
        for t in range(1, repeats + 2):
            batch = batches[t % len(batches)]
            plain_s = _timed(lambda: ctx.mean_gradients([batch]))
            step_s = _timed(lambda: pruner.step(ctx, t))
            if t > 1:  # the first pair warms caches and allocates the state
                plain.append(plain_s)
                scored.append(step_s)
        state = tensor_bytes(pruner, _param_ptrs(model))
        pruner.finish(ctx)
        rows.append(
            {
                "pruner": name,
                "plain_s": statistics.median(plain),
                "step_s": statistics.median(scored),
                "ratio": statistics.median(scored) / statistics.median(plain),
                "state_x": state / _prunable_bytes(ctx),
            }
        )
    with torch.no_grad():
        for n, p in prunable.items():
            p.copy_(original[n])
    return rows


def bench_dyn(bundle: Any, num_labels: int, batches: list[dict[str, Any]], repeats: int) -> list[dict[str, Any]]:
    """A training step with each dyn pruner active vs a dense training step, on two copies of the model."""
    from seven_bench.recipes import RECIPES
    from seven_bench.spec import resolve_pruner

    settings = dict(RECIPES["seven_dyn"])
    rows = []
    for name in DYN_PRUNERS:
        if name not in PRUNERS:
            rows.append({"pruner": name, "note": "not registered"})
            continue
        cfg = _pruner_config(name)
        hp, _ = resolve_pruner(cfg, "rte")
        hp.update(_always_pruning(name, repeats))
        models = {kind: copy.deepcopy(bundle.model) for kind in ("dense", "pruned")}
        ctxs, pruners, opts = {}, {}, {}
        for kind, model in models.items():
            prunable = {n: p for n, p in model.named_parameters() if n in bundle.prunable}
            ctxs[kind] = PruneContext(
                model, prunable, itertools.cycle(batches), num_labels, total_steps=10 * repeats, seed=0
            )
            pruners[kind] = Pruner(1.0) if kind == "dense" else PRUNERS.get(name).build(hp, 0.5, 0)
            pruners[kind].prepare(ctxs[kind])
            opt = build_optimizer(model, pruners[kind].param_groups(), settings)
            opts[kind] = (opt, build_scheduler(opt, settings, 10 * repeats))
            model.train()
        times: dict[str, list[float]] = {"dense": [], "pruned": []}
        for step in range(repeats + 1):
            batch = batches[step % len(batches)]
            for kind in ("dense", "pruned"):
                opt, sched = opts[kind]
                seconds = _timed(lambda: train_step(ctxs[kind], pruners[kind], opt, sched, batch, step, None))
                if step > 0:
                    times[kind].append(seconds)
        state = tensor_bytes(pruners["pruned"], _param_ptrs(models["pruned"]))
        rows.append(
            {
                "pruner": name,
                "plain_s": statistics.median(times["dense"]),
                "step_s": statistics.median(times["pruned"]),
                "ratio": statistics.median(times["pruned"]) / statistics.median(times["dense"]),
                "state_x": state / _prunable_bytes(ctxs["pruned"]),
            }
        )
        del models, ctxs, pruners, opts
    return rows


def _pruner_config(name: str) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from seven_bench.conf import compose_config

    cfg = compose_config([f"pruner={name}"])
    return OmegaConf.to_container(cfg.pruner)  # type: ignore[return-value]


def _always_pruning(name: str, repeats: int) -> dict[str, Any]:
    """Schedule settings that keep the pruner updating its mask at every benchmarked step."""
    horizon = 10 * repeats
    # the cubic pruners' final phase (t_f covers every step) recomputes the mask at each step: their worst case
    every_step = {"warmup_steps": horizon, "initial_warmup": 0, "final_warmup": 1, "fit_schedule": False}
    return {
        "seven_dyn": {"start": 0, "window": horizon, "fit_schedule": False},
        "platon": every_step,
        "movement": every_step,
    }.get(name, {})


def bench_selection(repeats: int) -> dict[str, Any]:
    """Global cut over BERT-base's 72 encoder matrices + pooler (85,524,480 scores): the tensor-by-tensor cut
    `global_topk` uses, the same cut on one concatenated buffer (the previous implementation), and a full sort."""
    gen = torch.Generator().manual_seed(0)
    scores = {
        f"l{i}.{j}": torch.rand(shape, generator=gen) for i in range(12) for j, shape in enumerate(BERT_BASE_SHAPES)
    }
    scores["pooler"] = torch.rand(768, 768, generator=gen)
    n = sum(s.numel() for s in scores.values())
    select, flat, sort = [], [], []
    for _ in range(repeats):
        select.append(_timed(lambda: global_topk(scores, 0.3)))
        flat.append(_timed(lambda: select_flat(torch.cat([s.flatten() for s in scores.values()]), 0.3)))
        sort.append(_timed(lambda: torch.cat([s.flatten() for s in scores.values()]).sort()))
    return {
        "scores": n,
        "select_s": statistics.median(select),
        "one_buffer_s": statistics.median(flat),
        "sort_s": statistics.median(sort),
        "ratio": statistics.median(select) / statistics.median(sort),
        "ratio_vs_one_buffer": statistics.median(select) / statistics.median(flat),
    }


def clip_setup(batch_size: int) -> tuple[Any, list[dict[str, Any]]]:
    from seven_bench.models import MODELS
    from seven_bench.tasks import TASKS

    torch.manual_seed(0)
    cfg = {
        "name": "clip",
        "arch": "ViT-B-32",
        "pretrained": None,
        "checkpoint": None,
        "quick_gelu": None,
        "templates": ['a photo of the number: "{}".'],
    }
    bundle = MODELS.get("clip").build(cfg, TASKS.get("mnist").info, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    batches = [
        {
            "pixel_values": torch.randn(batch_size, 3, 224, 224, generator=gen),
            "labels": torch.randint(0, 10, (batch_size,), generator=gen),
        }
        for _ in range(2)
    ]
    return bundle, batches


def _table(console: Console, title: str, rows: list[dict[str, Any]], base: str, target: str) -> None:
    table = Table(title=title)
    for col in ("pruner", f"{base} s", "pruner s", "ratio", "state / prunable bytes", "target"):
        table.add_column(col, justify="left" if col == "pruner" else "right")
    for row in rows:
        if "ratio" not in row:
            table.add_row(row["pruner"], "–", "–", "–", "–", row.get("note", ""))
            continue
        table.add_row(
            row["pruner"],
            f"{row['plain_s']:.3f}",
            f"{row['step_s']:.3f}",
            f"{row['ratio']:.3f}x",
            f"{row['state_x']:.2f}x",
            target if row["pruner"] in ("seven_pre", "seven_dyn", "dsp", "spp (search step)") else "",
        )
    console.print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["pre", "dyn", "spp", "selection", "kernels", "clip", "export", "lottery"],
    )
    parser.add_argument("--out", default="results/bench/bench.json")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(True)
    console = Console()
    report: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "device": "cpu"}
    if not {"pre", "dyn", "spp"} <= set(args.skip):
        bundle, task, batches = minilm_setup(32)
        if "pre" not in args.skip:
            report["pre_minilm"] = bench_pre(
                bundle.model, bundle.prunable, batches, task.info.num_labels, list(PRE_PRUNERS), args.repeats
            )
            _table(
                console,
                "Pre-pruning: one scoring step vs a plain forward+backward (MiniLM, RTE batch 32)",
                report["pre_minilm"],
                "fwd+bwd",
                "<= 1.15x, <= 3.5x state",
            )
        if "dyn" not in args.skip:
            report["dyn_minilm"] = bench_dyn(bundle, task.info.num_labels, batches, args.repeats)
            _table(
                console,
                "Dyn pruning: a training step with the pruner vs a dense training step (MiniLM, RTE batch 32)",
                report["dyn_minilm"],
                "dense step",
                "<= 1.10x, <= 3.5x state",
            )
        if "spp" not in args.skip:
            from seven_bench.bench_spp import bench_spp

            report["spp_minilm"] = [bench_spp(bundle, task.info.num_labels, batches, args.repeats)]
            _table(
                console,
                "SPP: a search step (scales only, weights frozen) vs a dense training step (MiniLM, RTE batch 32, "
                "128 tokens)",
                report["spp_minilm"],
                "dense step",
                "<= 1.10x",
            )
        del bundle, batches
    if "selection" not in args.skip:
        sel = report["selection_85m"] = bench_selection(args.repeats)
        console.print(
            f"Global selection over {sel['scores']:,} scores (BERT-base): {sel['select_s']:.3f} s (target <= 0.3 s), "
            f"{sel['ratio_vs_one_buffer']:.2f}x the same cut on one buffer ({sel['one_buffer_s']:.3f} s), "
            f"{sel['ratio']:.3f}x a full sort ({sel['sort_s']:.3f} s)"
        )
    if "kernels" not in args.skip:
        from seven_bench.bench_kernels import bench_kernels

        ker = report["kernels_85m"] = bench_kernels(args.repeats)
        console.print(
            f"C kernels ({ker['kernels']}) on {ker['weights']:,} weights (ViT-B/32's matrices), the same bits as "
            f"torch: SEVEN's update {ker['update_c_s']:.3f} s vs {ker['update_torch_s']:.3f} s eager = "
            f"{ker['update_speedup']:.2f}x faster; a no-resurrection global cut {ker['cut_c_s']:.3f} s vs "
            f"{ker['cut_torch_s']:.3f} s = {ker['cut_speedup']:.2f}x faster"
        )
    if "export" not in args.skip:
        from seven_bench.bench_export import bench_export

        ex = report["export_minilm"] = bench_export(args.repeats)
        console.print(
            f"Exported MiniLM, half heads + half FFN neurons removed (batch {ex['batch_size']}, "
            f"{ex['seq_len']} tokens, {ex['threads']} thread(s), interleaved median): "
            f"{ex['params_exported']:,} of {ex['params_dense']:,} parameters, "
            f"{ex['file_mib_exported']:.1f} of {ex['file_mib_dense']:.1f} MiB; latency "
            f"{ex['exported_s']:.3f} s vs {ex['dense_s']:.3f} s = x{ex['latency_ratio']:.3f}, ideal (MACs) "
            f"x{ex['ideal_ratio']:.3f} (target: within 10%: {'yes' if ex['within_10pct'] else 'no'})"
        )
    if "lottery" not in args.skip:
        from seven_bench.bench_lottery import bench_lottery

        lot = report["lottery"] = bench_lottery()
        console.print(
            f"LTH sweep at sparsities {lot['sparsities']} ({lot['model']}, RTE, {lot['round_steps']} steps per round "
            f"and per fine-tune): {lot['reuse_steps']} optimizer steps with the shared IMP path "
            f"({lot['path_rounds_reuse']} rounds, {lot['reuse_seconds']:.0f} s) vs {lot['no_reuse_steps']} with one "
            f"path per cell ({lot['no_reuse_seconds']:.0f} s); target <= {lot['target_steps']:.0f} (1 path + 1 "
            f"fine-tune per sparsity). A cell killed at the start of round 3 gets back there in "
            f"{lot['seconds_to_round3_after_resume']:.1f} s (rounds {lot['rounds_reloaded']} reloaded) vs "
            f"{lot['seconds_to_round3_first_run']:.1f} s the first time; a fine-tune killed at step "
            f"{lot['fine_tune_killed_at_step']} (checkpoint every {lot['fine_tune_checkpoint_every']}) resumed from "
            f"step {(lot['fine_tune_resumed_from'] or {}).get('step')}, losing {lot['fine_tune_lost_steps']} steps"
        )
    if "clip" not in args.skip:
        bundle, batches = clip_setup(8)
        report["pre_clip"] = bench_pre(bundle.model, bundle.prunable, batches, 10, ["seven_pre"], args.repeats)
        _table(
            console,
            "SEVEN-pre on a ViT-B/32 visual tower (random weights, batch 8 of 224x224; the step's pruning "
            "work is per weight, so the ratio falls as the batch grows)",
            report["pre_clip"],
            "fwd+bwd",
            "<= 1.5x",
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    console.print(f"written to {out}")


if __name__ == "__main__":
    main()
