"""Shared fixtures: the local data root and a tiny model that speaks the model contract."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SEVEN_BENCH_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(autouse=True)
def _offline_and_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if SHARED_DATA.is_dir():
        monkeypatch.setenv("SEVEN_BENCH_DATA", str(SHARED_DATA))


def requires_shared_data() -> pytest.MarkDecorator:
    return pytest.mark.skipif(not (SHARED_DATA / "glue").is_dir(), reason=f"no shared data at {SHARED_DATA}")


class ToyModel(nn.Module):
    """One bias-free Linear: small enough to check gradients and scores by hand."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.lin = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        with torch.no_grad():
            self.lin.weight.copy_(weight)

    def forward(self, x: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=self.lin(x))
