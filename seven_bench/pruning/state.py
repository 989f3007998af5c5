"""A pruner's fine-tuning state as plain data, for checkpoints: every attribute that is a tensor, a number, a
string or a container of those, recursively through helper objects (criterion, plan, trajectory), and
nothing that points into the model (its Parameters, modules, callables), which the resumed cell rebuilds in
`prepare`. Dyn pruners checkpoint through this, so a new dyn method round-trips without code of its own;
tests/test_checkpoints.py resumes each one bit for bit."""

from __future__ import annotations

import enum
import functools
import types
from typing import Any

import torch
from torch import nn

_PLAIN = (int, float, str, bool, type(None), enum.Enum, torch.device, torch.dtype)
_CODE = (types.FunctionType, types.MethodType, types.BuiltinFunctionType, functools.partial, type)
_SKIP = object()  # a value that refers into the model or is code: not state


def _value(value: Any, depth: int) -> Any:
    if isinstance(value, (nn.Parameter, nn.Module, *_CODE)):
        return _SKIP
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (list, tuple)):
        items = [_value(v, depth) for v in value]
        return _SKIP if any(i is _SKIP for i in items) else type(value)(items)
    if isinstance(value, dict):
        out = {k: _value(v, depth) for k, v in value.items()}
        return _SKIP if any(v is _SKIP for v in out.values()) else out
    if depth > 4 or not hasattr(value, "__dict__"):
        return _SKIP
    return {"__object__": capture(value, depth + 1)}


def capture(obj: Any, depth: int = 0) -> dict[str, Any]:
    """The state of `obj` (see the module docstring); attributes that refer into the model are left out."""
    state: dict[str, Any] = {}
    for key, value in vars(obj).items():
        captured = _value(value, depth)
        if captured is not _SKIP:
            state[key] = captured
    return state


def to_device(value: Any, device: torch.device | None) -> Any:
    """Tensors of a nested container moved to `device` (None: left where they are)."""
    if isinstance(value, torch.Tensor):
        return value.to(device) if device is not None else value
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    return value


def restore(obj: Any, state: dict[str, Any], device: torch.device | None = None) -> None:
    """Put captured state back onto an object of the same class (after its `prepare` rebuilt the model refs)."""
    for key, value in state.items():
        if isinstance(value, dict) and set(value) == {"__object__"}:
            target = getattr(obj, key, None)
            if target is None:
                raise ValueError(f"cannot restore {type(obj).__name__}.{key}: the object has no such part")
            restore(target, value["__object__"], device)
        else:
            object.__setattr__(obj, key, to_device(value, device))  # frozen dataclasses (plans) too
