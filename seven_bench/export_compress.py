"""Compressed storage of sparse weights: bitmask, CSR, and N:M (values + in-group positions).

A mask in a dense layout saves nothing on disk. Per tensor the exporter picks the smallest of:

* ``dense``: the tensor as is (no zeros, or too few to pay for an index);
* ``bitmask``: one bit per entry (numpy ``packbits``, row-major) + the kept values in order: n/8 + 4 nnz bytes
  for float32, the smaller below ~97% density;
* ``csr``: int32 row pointers, column indices (int16 when the tensor has <= 32,768 columns) + values: wins at
  very high sparsity;
* ``nm`` (N:M masks, e.g. 2:4): exactly n values per group of m consecutive inputs of a row + each value's
  position within its group in ceil(log2 m) bits. This is the information torch's semi-structured layout holds
  (`torch.sparse.to_sparse_semi_structured`: compressed values + 2-bit-per-value metadata for 2:4); that call
  needs CUDA and fp16/bf16/int8, so the file keeps this device-neutral form, which converts to it on a GPU.

Everything goes into one safetensors file (``<name>::<field>`` keys, formats and shapes in its metadata), and
`decompress` gives back the dense tensors bit for bit.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch

FORMATS = ("dense", "bitmask", "csr", "nm")


def _pack_bits(flags: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.packbits(flags.reshape(-1).cpu().numpy().astype(np.uint8)))


def _unpack_bits(packed: torch.Tensor, count: int) -> torch.Tensor:
    return torch.from_numpy(np.unpackbits(packed.numpy(), count=count).astype(bool))


def to_bitmask(weight: torch.Tensor) -> dict[str, torch.Tensor]:
    flat = weight.detach().reshape(-1).cpu()
    keep = flat != 0
    return {"bits": _pack_bits(keep), "values": flat[keep].clone()}


def from_bitmask(parts: dict[str, torch.Tensor], shape: tuple[int, ...]) -> torch.Tensor:
    count = math.prod(shape)
    keep = _unpack_bits(parts["bits"], count)
    out = torch.zeros(count, dtype=parts["values"].dtype)
    out[keep] = parts["values"]
    return out.view(shape)


def to_csr(weight: torch.Tensor) -> dict[str, torch.Tensor]:
    rows = weight.detach().cpu().reshape(weight.shape[0], -1)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": only its plain layout is used here
        warnings.simplefilter("ignore")
        csr = rows.to_sparse_csr()
    col_dtype = torch.int16 if rows.shape[1] <= 2**15 else torch.int32
    return {
        "crow": csr.crow_indices().to(torch.int32),
        "col": csr.col_indices().to(col_dtype),
        "values": csr.values().clone(),
    }


def from_csr(parts: dict[str, torch.Tensor], shape: tuple[int, ...]) -> torch.Tensor:
    rows = shape[0]
    cols = math.prod(shape) // rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        csr = torch.sparse_csr_tensor(
            parts["crow"].long(), parts["col"].long(), parts["values"], size=(rows, cols), dtype=parts["values"].dtype
        )
        return csr.to_dense().view(shape)


def _position_bits(m: int) -> int:
    return max(1, math.ceil(math.log2(m)))


def to_nm(weight: torch.Tensor, mask: torch.Tensor, n: int, m: int) -> dict[str, torch.Tensor]:
    """`mask` keeps at most n of every m consecutive inputs of a row; groups keeping fewer are padded with
    their first unkept positions (stored as zeros), so every group holds exactly n values."""
    rows = weight.detach().cpu().reshape(weight.shape[0], -1)
    groups = rows.reshape(rows.shape[0], -1, m)
    keep = mask.detach().cpu().reshape(groups.shape)
    # kept first (in position order), then the unkept: a stable sort on ~keep
    order = torch.sort((~keep).to(torch.int8), dim=-1, stable=True).indices[..., :n]
    positions = torch.sort(order, dim=-1).values
    values = torch.gather(groups * keep, -1, positions)
    bits = _position_bits(m)
    planes = ((positions.reshape(-1, 1) >> torch.arange(bits - 1, -1, -1)) & 1).bool()
    return {"values": values.reshape(rows.shape[0], -1).clone(), "positions": _pack_bits(planes)}


def from_nm(parts: dict[str, torch.Tensor], shape: tuple[int, ...], n: int, m: int) -> torch.Tensor:
    values = parts["values"]
    rows = values.shape[0]
    bits = _position_bits(m)
    planes = _unpack_bits(parts["positions"], values.numel() * bits).view(-1, bits).long()
    positions = (planes << torch.arange(bits - 1, -1, -1)).sum(dim=1).view(rows, -1, n)
    out = torch.zeros(rows, values.shape[1] // n, m, dtype=values.dtype)
    out.scatter_(-1, positions, values.view(rows, -1, n))
    return out.view(shape)


def _bytes(parts: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in parts.values())


def compress(
    weight: torch.Tensor, nm: tuple[int, int] | None = None, mask: torch.Tensor | None = None
) -> tuple[str, dict]:
    """(format, parts) of the smallest storage of `weight`; N:M when `nm` and its mask are given."""
    dense = {"values": weight.detach().cpu().contiguous()}
    if nm is not None and mask is not None:
        return "nm", to_nm(weight, mask, *nm)
    if weight.dim() < 2 or bool((weight != 0).all()):
        return "dense", dense
    candidates = {"dense": dense, "bitmask": to_bitmask(weight), "csr": to_csr(weight)}
    best = min(candidates, key=lambda k: _bytes(candidates[k]))
    return best, candidates[best]


def decompress_one(fmt: str, parts: dict[str, torch.Tensor], shape: tuple[int, ...], nm: tuple[int, int] | None):
    if fmt == "dense":
        return parts["values"].view(shape)
    if fmt == "bitmask":
        return from_bitmask(parts, shape)
    if fmt == "csr":
        return from_csr(parts, shape)
    if fmt == "nm" and nm is not None:
        return from_nm(parts, shape, *nm)
    raise ValueError(f"unknown storage format {fmt!r}: one of {', '.join(FORMATS)}")


def save_compressed(
    state: dict[str, torch.Tensor],
    path: str | Path,
    nm: tuple[int, int] | None = None,
    masks: dict[str, torch.Tensor] | None = None,
) -> dict[str, int]:
    """Write every tensor of `state` in its smallest format (N:M for the tensors in `masks` when `nm` is
    set) to one safetensors file; returns how many tensors took each format."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, dict] = {}
    counts = dict.fromkeys(FORMATS, 0)
    for name, weight in state.items():
        mask = None if masks is None else masks.get(name)
        fmt, parts = compress(weight, nm if mask is not None else None, mask)
        counts[fmt] += 1
        meta[name] = {"format": fmt, "shape": list(weight.shape)}
        for field, tensor in parts.items():
            tensors[f"{name}::{field}"] = tensor.contiguous()
    header = {"tensors": json.dumps(meta), "nm": json.dumps(list(nm) if nm else None)}
    save_file(tensors, str(path), metadata=header)
    return counts


def load_compressed(path: str | Path) -> dict[str, torch.Tensor]:
    """The dense state dict a `save_compressed` file holds."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        header = handle.metadata()
        meta = json.loads(header["tensors"])
        nm = json.loads(header["nm"])
        stored = {key: handle.get_tensor(key) for key in handle.keys()}
    out = {}
    for name, info in meta.items():
        parts = {key.split("::", 1)[1]: t for key, t in stored.items() if key.split("::", 1)[0] == name}
        out[name] = decompress_one(info["format"], parts, tuple(info["shape"]), tuple(nm) if nm else None)
    return out
