"""What every model entry provides, whatever its family (text encoder or CLIP visual tower).

Contract: ``bundle.model(**batch)`` returns an object with ``.logits`` and, when the batch carries
``labels``, ``.loss``. The trainer, the evaluator and every pruner rely on that contract alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn

from seven_bench.registry import Registry
from seven_bench.tasks.base import TaskInfo


@dataclass
class ModelBundle:
    model: nn.Module
    # The weights a pruner may touch, by parameter name (as in model.named_parameters()).
    prunable: dict[str, nn.Parameter]
    modality: str  # "text" or "image"
    tokenizer: Any = None  # text models: a HF tokenizer
    preprocess: Callable[[Any], torch.Tensor] | None = None  # image models: PIL image -> tensor
    info: dict[str, Any] = field(default_factory=dict)  # where the weights came from, sizes: goes in the record


@dataclass(frozen=True)
class ModelEntry:
    name: str
    modality: str
    # Raises UserError when the weights cannot be had (offline, no cache), before anything loads.
    check_available: Callable[[Mapping[str, Any]], None]
    # (model config, task info, torch device) -> bundle on that device
    build: Callable[[Mapping[str, Any], TaskInfo, torch.device], ModelBundle]
    description: str = ""


# The registry lives beside the contract, so model modules register without importing the package.
MODELS: Registry[ModelEntry] = Registry("model")
