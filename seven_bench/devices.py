"""The torch device a cell or an export runs on: `auto` takes an accelerator when torch sees one."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")
