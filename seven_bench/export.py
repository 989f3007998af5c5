"""Export a pruned model so that it is really smaller: `export=true` on a cell, or `seven-bench-export`.

A cell's masks zero weights in a dense layout, which is neither smaller nor faster. The export writes
``<results_dir>/exports/<cell-hash>/``:

* a Hugging Face folder (config.json, model.safetensors, tokenizer, ``modeling_pruned_bert.py``): BERT-family
  models with removed heads, q-k / v dims and FFN neurons sliced out (export_slice.py), per-layer sizes in the
  config (export_model.py). It loads with ``AutoModelForSequenceClassification.from_pretrained(dir,
  trust_remote_code=True)`` anywhere, or without remote code once ``seven_bench.export`` is imported;
* ``compressed.safetensors`` when zeros remain that fit no structure (unstructured or N:M masks): every tensor
  in its smallest storage (export_compress.py); ``load_compressed`` gives the state dict back;
* ``dense_config.json`` (the unpruned architecture, the latency reference) and ``export.json`` (what the
  record's ``export`` section holds: parameters, file sizes, latency vs dense).

The folder is itself the cell's kept state: `seven-bench-export` re-exports from it (another --out, another
device or batch) and updates the record; a cell run without export=true kept no weights.

CLIP visual towers: open_clip's `nn.MultiheadAttention` has one head count for all layers and no way to load
other sizes, so heads and neurons are not sliced there; the export stores the tower's state compressed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from seven_bench.errors import UserError
from seven_bench.export_compress import save_compressed

BATCH_SIZE, SEQ_LEN, REPEATS = 32, 128, 5
_MODEL_FILE = "modeling_pruned_bert.py"


def register_pruned_bert() -> None:
    """Let Auto* classes load export folders in this process without trust_remote_code."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from seven_bench.export_model import PrunedBertConfig, PrunedBertForSequenceClassification

    try:
        AutoConfig.register("pruned_bert", PrunedBertConfig)
        AutoModelForSequenceClassification.register(PrunedBertConfig, PrunedBertForSequenceClassification)
    except ValueError:  # already registered
        pass


def export_dir(results_dir: str | Path, cell_hash: str) -> Path:
    return Path(results_dir) / "exports" / cell_hash


def _file_bytes(state: dict[str, torch.Tensor], folder: Path) -> int:
    from safetensors.torch import save_file

    path = folder / "size_probe.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(path))
    size = path.stat().st_size
    path.unlink()
    return size


def _params(model: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    return total, sum(int(torch.count_nonzero(p)) for p in model.parameters())


def _residual_zeros(model: nn.Module) -> bool:
    """Zeros left inside weight matrices after slicing (unstructured or N:M pruning)."""
    return any(p.dim() == 2 and bool((p == 0).any()) for n, p in model.named_parameters() if "embeddings" not in n)


def nm_masks(
    state: dict[str, torch.Tensor], nm: tuple[int, int], masks: dict[str, torch.Tensor] | None
) -> dict[str, torch.Tensor]:
    """The tensors stored as N:M: those of `masks` whose shape survived the slicing; without masks, every
    matrix whose nonzeros keep at most n of every m consecutive inputs of a row."""
    from seven_bench.pruning.selection import nm_groups_ok

    if masks is not None:
        return {k: m for k, m in masks.items() if k in state and state[k].shape == m.shape}
    return {
        k: t != 0
        for k, t in state.items()
        if t.dim() == 2 and t.shape[1] % nm[1] == 0 and "embeddings" not in k and nm_groups_ok(t != 0, *nm)
    }


def _write_folder(
    exported: nn.Module, folder: Path, tokenizer: Any, reference: nn.Module, masks: dict | None, nm: Any
) -> dict[str, Any]:
    from seven_bench.export_slice import dense_config

    structured = hasattr(exported, "bert")
    if structured:
        exported.config.auto_map = {
            "AutoConfig": "modeling_pruned_bert.PrunedBertConfig",
            "AutoModelForSequenceClassification": "modeling_pruned_bert.PrunedBertForSequenceClassification",
        }
        exported.save_pretrained(folder)
        shutil.copyfile(Path(__file__).with_name("export_model.py"), folder / _MODEL_FILE)
        (folder / "dense_config.json").write_text(json.dumps(dense_config(reference), indent=1, default=str))
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
    out: dict[str, Any] = {"exported_file_bytes": None, "compressed_file_bytes": None, "storage_formats": None}
    if structured:
        out["exported_file_bytes"] = (folder / "model.safetensors").stat().st_size
    if not structured or _residual_zeros(exported):
        state = exported.state_dict()
        if nm is not None:  # the N:M tensors: the pruner's masks, or (a re-export) the zeros that keep the pattern
            masks = nm_masks(state, nm, masks)
        out["storage_formats"] = save_compressed(state, folder / "compressed.safetensors", nm=nm, masks=masks)
        out["compressed_file_bytes"] = (folder / "compressed.safetensors").stat().st_size
    return out


def export_model(
    model: nn.Module,
    out: str | Path,
    *,
    tokenizer: Any = None,
    reference: nn.Module | None = None,
    masks: dict[str, torch.Tensor] | None = None,
    nm: tuple[int, int] | None = None,
    latency: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Slice `model` (its zeros decide what goes), write it to `out` (replaced atomically) and measure it.

    `reference` is the dense architecture to compare with (default: `model` itself, the masked model in its
    dense layout); `masks`/`nm` mark N:M tensors for the compressed storage; `latency` = batch_size, seq_len,
    repeats (None: no timing). Returns the summary written to export.json and to the record.
    """
    from seven_bench.export_slice import slice_bert
    from seven_bench.export_speed import compare_latency

    was_training = model.training
    model.eval()
    reference = reference if reference is not None else model
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide the export from other users of a shared results_dir
    notes: list[str] = []
    try:
        if hasattr(model, "bert"):
            exported, plan = slice_bert(model)
        else:
            exported, plan = model, {}
            notes.append("CLIP visual tower: heads and neurons are not sliced (open_clip loads one size per model)")
        summary: dict[str, Any] = {"path": str(out), "nm": list(nm) if nm else None, **plan}
        if plan:
            sizes = plan["layer_sizes"]
            summary["heads_kept"] = sum(s["heads"] for s in sizes)
            summary["heads_total"] = reference.config.num_attention_heads * len(sizes)
            summary["neurons_kept"] = sum(s["intermediate_size"] for s in sizes)
            summary["neurons_total"] = reference.config.intermediate_size * len(sizes)
        if plan:
            summary["max_abs_logit_diff"] = _max_logit_diff(model, exported)
        dense_params, _ = _params(reference)
        params, nonzero = _params(exported)
        summary["params"] = {"dense": dense_params, "exported": params, "exported_nonzero": nonzero}
        summary.update(_write_folder(exported, tmp, tokenizer, reference, masks, nm))
        summary["dense_file_bytes"] = _file_bytes(reference.state_dict(), tmp)
        if latency and plan:
            device = next(model.parameters()).device
            summary["latency"] = compare_latency(
                reference, exported, latency["batch_size"], latency["seq_len"], latency["repeats"], device
            )
        summary["notes"] = notes
        (tmp / "export.json").write_text(json.dumps(summary, indent=1, default=str))
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        model.train(was_training)
    return summary


@torch.no_grad()
def _max_logit_diff(masked: nn.Module, exported: nn.Module, batch: int = 2, length: int = 16) -> float:
    """The largest |logit difference| between the masked model and its sliced export on one seeded random
    batch (padding included): the record's proof that slicing removed only what the zeros had removed."""
    device = next(masked.parameters()).device
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(masked.config.vocab_size, (batch, length), generator=generator).to(device)
    attention = torch.ones_like(ids)
    attention[-1, length // 2 :] = 0
    first = [m(input_ids=ids, attention_mask=attention)[0].float() for m in (masked, exported)]
    return float((first[0] - first[1]).abs().max())


def export_cell(bundle: Any, pruner: Any, results_dir: str | Path, cell_hash: str) -> dict[str, Any]:
    """run_cell's hook for `export=true`: export the fine-tuned masked model; an error is recorded, not raised
    (the cell's accuracy stands without its export)."""
    try:
        nm = getattr(pruner, "nm", None)
        return export_model(
            bundle.model,
            export_dir(results_dir, cell_hash),
            tokenizer=bundle.tokenizer,
            masks=pruner.masks,
            nm=tuple(nm) if nm else None,
            latency={"batch_size": BATCH_SIZE, "seq_len": SEQ_LEN, "repeats": REPEATS},
        )
    except Exception as err:  # noqa: BLE001 - recorded beside the cell's results
        return {"error": f"{type(err).__name__}: {err}".splitlines()[0]}


# ------------------------------------------------------------------------------------------------ CLI
def _locate(targets: list[str], results_dir: str | None) -> tuple[Path, dict[str, Any]]:
    """(record path, record) of a record.json / cell folder, or of the cell that `key=value` overrides name."""
    from seven_bench.records import load_record, record_path

    first = Path(targets[0]) if targets else None
    if first is not None and len(targets) == 1 and "=" not in targets[0]:
        path = first / "record.json" if first.is_dir() else first
    else:
        from seven_bench.conf import compose_config
        from seven_bench.spec import build_spec

        overrides = [*targets, *([f"results_dir={results_dir}"] if results_dir else [])]
        cfg = compose_config(overrides)
        path = record_path(cfg.results_dir, build_spec(cfg).cell_hash)
    record = load_record(path)
    if record is None:
        raise UserError(f"no run record at {path}: run the cell first (seven-bench ... export=true)")
    return path, record


def _load_export(folder: Path, cell_hash: str) -> tuple[nn.Module, nn.Module, Any]:
    """(exported model, dense reference of the same architecture, tokenizer) from a kept export folder."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from seven_bench.export_model import PrunedBertForSequenceClassification

    register_pruned_bert()  # the tokenizer reads config.json: a known model_type needs no remote-code prompt
    if not (folder / "config.json").is_file():
        if (folder / "compressed.safetensors").is_file():
            raise UserError(f"cell {cell_hash} is a CLIP export: only its compressed state is kept ({folder})")
        raise UserError(f"cell {cell_hash} kept no weights ({folder} is missing): rerun it with export=true force=true")
    model = PrunedBertForSequenceClassification.from_pretrained(folder).eval()
    dense_cfg = json.loads((folder / "dense_config.json").read_text())
    reference = BertForSequenceClassification(BertConfig(**dense_cfg)).eval()  # same shapes: same speed, size
    reference.config._attn_implementation = model.config._attn_implementation
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    except (OSError, ValueError):
        tokenizer = None
    return model, reference, tokenizer


def main(argv: Sequence[str] | None = None) -> int:
    """``seven-bench-export <record.json | cell folder | key=value ...>``: re-export a kept cell and time it."""
    parser = argparse.ArgumentParser(
        prog="seven-bench-export",
        description="Write a pruned cell's model really smaller (heads/neurons sliced, sparse weights compressed) "
        "and time it against the dense architecture. The cell must have run with export=true.",
    )
    parser.add_argument("target", nargs="+", help="record.json, its folder, or the cell's overrides (model=... ...)")
    parser.add_argument("--results-dir", default=None, help="with overrides: where the records are (default: results)")
    parser.add_argument("--out", type=Path, default=None, help="export folder (default: the kept one, rewritten)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--seq-len", type=int, default=SEQ_LEN)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--device", default="auto", help="auto (cuda when present) or a torch device")
    args = parser.parse_args(argv)
    try:
        from seven_bench.devices import resolve_device
        from seven_bench.records import write_record

        path, record = _locate(list(args.target), args.results_dir)
        cell_hash = record.get("cell_hash") or path.parent.name
        kept = export_dir(path.parent.parent.parent, cell_hash)
        model, reference, tokenizer = _load_export(kept, cell_hash)
        previous = json.loads((kept / "export.json").read_text()) if (kept / "export.json").is_file() else {}
        device = resolve_device(args.device)
        summary = export_model(
            model.to(device),
            args.out or kept,
            tokenizer=tokenizer,
            reference=reference.to(device),
            nm=tuple(previous["nm"]) if previous.get("nm") else None,
            latency={"batch_size": args.batch_size, "seq_len": args.seq_len, "repeats": args.repeats},
        )
    except UserError as err:
        print(f"seven-bench-export: error: {err}", file=sys.stderr)
        return 2
    if args.out is None or Path(args.out).resolve() == kept.resolve():
        record["export"] = summary
        write_record(path, record)
    print(describe(summary))
    return 0


def describe(summary: dict[str, Any]) -> str:
    """One line: parameters, file size and latency of the export beside the dense model."""
    params = summary["params"]
    line = (
        f"exported {summary['path']}: {params['exported']:,} parameters (dense {params['dense']:,}), "
        f"{(summary.get('exported_file_bytes') or summary.get('compressed_file_bytes') or 0) / 2**20:.1f} MiB "
        f"(dense {summary['dense_file_bytes'] / 2**20:.1f} MiB)"
    )
    if summary.get("compressed_file_bytes"):
        line += f", compressed {summary['compressed_file_bytes'] / 2**20:.1f} MiB"
    lat = summary.get("latency")
    if lat:
        line += (
            f"; latency x{lat['latency_ratio']:.3f} of dense (ideal x{lat['ideal_ratio']:.3f}) at batch "
            f"{lat['batch_size']}, {lat['seq_len']} tokens on {lat['device']}"
        )
    return line


if __name__ == "__main__":
    raise SystemExit(main())
