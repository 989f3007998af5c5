"""Image examples (images): (PIL image, label) sources over arrays or files, featurized as
{"pixel_values", "labels"}; the collate function, the top-1 metric and deterministic subsampling."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from seven_bench.errors import UserError


# ------------------------------------------------------------------------------------- datasets
class ArrayImages:
    """uint8 images [N, H, W] or [N, H, W, C] with integer labels -> (PIL image, label)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        return Image.fromarray(self.images[i]), int(self.labels[i])


class FileImages:
    """(path, label) samples (an ImageFolder's) -> (PIL image, label)."""

    def __init__(self, samples: Sequence[tuple[str, int]]):
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        path, label = self.samples[i]
        with open(path, "rb") as f:
            img = Image.open(f)
            img.load()
        return img, int(label)


def _to_tensor(img: Any) -> torch.Tensor:
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


class ImageExamples(torch.utils.data.Dataset):
    """A (PIL, label) source, subsampled by `indices`, featurized as {"pixel_values", "labels"}."""

    def __init__(self, base: Any, indices: Sequence[int] | None, preprocess: Callable[[Any], torch.Tensor] | None):
        self.base = base
        self.indices = list(range(len(base))) if indices is None else [int(i) for i in indices]
        self.preprocess = preprocess or _to_tensor

    def __len__(self) -> int:
        return len(self.indices)

    def label(self, i: int) -> int:
        """The label of example i without decoding the image where the source allows it."""
        j = self.indices[i]
        if isinstance(self.base, ArrayImages):
            return int(self.base.labels[j])
        if isinstance(self.base, FileImages):
            return int(self.base.samples[j][1])
        return int(self.base[j][1])

    def __getitem__(self, i: int) -> dict[str, Any]:
        img, label = self.base[self.indices[i]]
        return {"pixel_values": self.preprocess(img.convert("RGB")), "labels": int(label)}


def collate(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    return {
        "pixel_values": torch.stack([e["pixel_values"] for e in examples]),
        "labels": torch.tensor([int(e["labels"]) for e in examples], dtype=torch.long),
    }


def top1(preds: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    preds, labels = np.asarray(preds).reshape(-1), np.asarray(labels).reshape(-1)
    if preds.shape != labels.shape:
        raise ValueError(f"{preds.shape[0]} predictions for {labels.shape[0]} labels")
    return {"top1": float((preds == labels).mean()) if labels.size else 0.0}


def subsample(n: int, k: Any, seed: int = 0) -> list[int] | None:
    """A deterministic subset of k of range(n) (sorted), or None for all."""
    if k is None or int(k) >= n:
        return None
    if int(k) <= 0:
        raise UserError(f"max_train_examples/max_eval_examples must be positive, got {k}")
    return sorted(np.random.default_rng(seed).permutation(n)[: int(k)].tolist())
