"""The frozen zero-shot head of the CLIP models (clip): prompt templates per task, and the head built from
the text tower, per class the mean of the normalized prompt embeddings, renormalized.

open_clip is imported inside functions only, so importing the registry stays fast.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from seven_bench.errors import UserError

# Prompt templates per task, as in CLIP's prompts / the ISP & task-vectors code (MNIST/SVHN one
# template, GTSRB three, CIFAR eighteen, ImageNet CLIP's eighty from open_clip).
_CIFAR_TEMPLATES = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a black and white photo of a {}.",
    "a low contrast photo of a {}.",
    "a high contrast photo of a {}.",
    "a bad photo of a {}.",
    "a good photo of a {}.",
    "a photo of a small {}.",
    "a photo of a big {}.",
    "a photo of the {}.",
    "a blurry photo of the {}.",
    "a black and white photo of the {}.",
    "a low contrast photo of the {}.",
    "a high contrast photo of the {}.",
    "a bad photo of the {}.",
    "a good photo of the {}.",
    "a photo of the small {}.",
    "a photo of the big {}.",
)
TEMPLATES: dict[str, tuple[str, ...]] = {
    "mnist": ('a photo of the number: "{}".',),
    "svhn": ('a photo of the number: "{}".',),
    "gtsrb": (
        'a zoomed in photo of a "{}" traffic sign.',
        'a centered photo of a "{}" traffic sign.',
        'a close up photo of a "{}" traffic sign.',
    ),
    "cifar10": _CIFAR_TEMPLATES,
    "cifar100": _CIFAR_TEMPLATES,
}
DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)


def templates_for(task_name: str, override: Sequence[str] | None = None) -> tuple[Any, ...]:
    """The prompt templates for a task: `override` (format strings) if given, else the task's own."""
    if override:
        return tuple(str(t) for t in override)
    if task_name in TEMPLATES:
        return TEMPLATES[task_name]
    if task_name == "imagenet":
        from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

        return tuple(OPENAI_IMAGENET_TEMPLATES)
    return DEFAULT_TEMPLATES


def _fill(template: Any, name: str) -> str:
    return template(name) if callable(template) else template.format(name)


@torch.no_grad()
def build_text_head(
    encode: Callable[[list[str]], torch.Tensor],
    class_names: Sequence[str],
    templates: Sequence[Any],
    batch_size: int = 512,
) -> torch.Tensor:
    """[num_classes, dim]: per class, the mean of the normalized prompt embeddings, renormalized.

    `encode` maps a list of prompts to a [len, dim] tensor (the text tower)."""
    if not class_names:
        raise UserError("the CLIP zero-shot head needs class names, and this task has none")
    if not templates:
        raise UserError("the CLIP zero-shot head needs at least one prompt template")
    texts = [_fill(t, name) for name in class_names for t in templates]
    chunks = [F.normalize(encode(texts[i : i + batch_size]).float(), dim=-1) for i in range(0, len(texts), batch_size)]
    emb = torch.cat(chunks).reshape(len(class_names), len(templates), -1).mean(dim=1)
    return F.normalize(emb, dim=-1)
