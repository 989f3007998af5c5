"""Image tasks: registry facts, MNIST from the shared offline folder (real digits, real labels, the
80/20 split warning), an ImageFolder made of real MNIST digits, and the offline error messages."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from seven_bench.errors import UserError
from seven_bench.tasks import TASKS, images
from seven_bench.tasks.images import read_idx, resolve_task_info

SHARED = Path(os.environ.get("SEVEN_BENCH_DATA") or "/work/shared/data")
needs_mnist = pytest.mark.skipif(
    not (SHARED / "mnist" / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"no shared MNIST files under {SHARED}/mnist (set SEVEN_BENCH_DATA)",
)
CONF = Path(__file__).resolve().parents[1] / "conf" / "task"
IMAGE_TASKS = ("mnist", "svhn", "gtsrb", "cifar10", "cifar100", "imagenet")
T10K_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _bundle(size: int = 32) -> SimpleNamespace:
    """A stand-in for a model bundle: only preprocess (PIL -> [3, size, size]) is used by load()."""
    from torchvision import transforms as T

    return SimpleNamespace(preprocess=T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor()]), model=None)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(images, "_host_reachable", lambda *a, **k: False)
    monkeypatch.setenv(images.CACHE_ENV, str(tmp_path / "empty-cache"))


def test_registry_facts() -> None:
    expected = {"mnist": 10, "svhn": 10, "gtsrb": 43, "cifar10": 10, "cifar100": 100, "imagenet": 1000}
    for name, n in expected.items():
        info = TASKS.get(name).info
        assert info.modality == "image" and info.reported_metric == "top1"
        assert info.num_labels == n == len(info.class_names)
        # CLIP's ImageNet names repeat two (missile, sunglasses); every other list is unique
        assert len(set(info.class_names)) == (998 if name == "imagenet" else n)
    assert TASKS.get("mnist").info.class_names == tuple("0123456789")
    assert TASKS.get("cifar10").info.class_names[0] == "airplane"
    assert TASKS.get("cifar100").info.class_names[1] == "aquarium fish"
    assert TASKS.get("gtsrb").info.class_names[14] == "stop"
    assert TASKS.get("imagenet").info.class_names[0] == "tench"
    for name in IMAGE_TASKS:
        cfg = yaml.safe_load((CONF / f"{name}.yaml").read_text())
        assert cfg == {"name": name, "image_folder": None, "max_train_examples": None, "max_eval_examples": None}


@needs_mnist
def test_mnist_shared_folder(offline: None) -> None:
    entry = TASKS.get("mnist")
    entry.check_available({}, SHARED)
    data = entry.load({"image_folder": None, "max_train_examples": None, "max_eval_examples": None}, SHARED, _bundle())
    train, val = data.train, data.evals["val"]
    assert (len(train), len(val)) == (8000, 2000)
    # labels of the whole t10k set, through the split, are MNIST's
    counts = Counter(train.label(i) for i in range(len(train))) + Counter(val.label(i) for i in range(len(val)))
    assert [counts[d] for d in range(10)] == T10K_COUNTS
    warnings = data.info["warnings"]
    assert len(warnings) == 1 and "train-images-idx3-ubyte.gz is missing" in warnings[0] and "8000" in warnings[0]
    assert data.info["source"] == f"local:{SHARED / 'mnist'}" and data.info["train_examples"] == 8000

    # examples: RGB tensors whose label matches the raw file, in order
    raw_x = read_idx(SHARED / "mnist" / "t10k-images-idx3-ubyte.gz")
    raw_y = read_idx(SHARED / "mnist" / "t10k-labels-idx1-ubyte.gz")
    assert raw_x.shape == (10000, 28, 28) and raw_y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    ex = val[3]
    assert ex["pixel_values"].shape == (3, 32, 32) and ex["labels"] == int(raw_y[8003])
    assert torch.equal(ex["pixel_values"][0], ex["pixel_values"][1])  # grayscale -> RGB
    batch = data.collate([train[i] for i in range(5)])
    assert batch["pixel_values"].shape == (5, 3, 32, 32) and batch["labels"].dtype == torch.int64
    assert batch["labels"].tolist() == raw_y[:5].tolist()

    # real digits: a nearest-class-mean classifier fit on the train split does well on the eval split
    x = raw_x.reshape(10000, -1).astype(np.float32) / 255.0
    means = np.stack([x[:8000][raw_y[:8000] == d].mean(0) for d in range(10)])
    pred = ((x[8000:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    assert data.metric(pred, raw_y[8000:])["top1"] > 0.75


@needs_mnist
def test_mnist_subsample_is_deterministic(offline: None) -> None:
    entry = TASKS.get("mnist")
    cfg = {"max_train_examples": 100, "max_eval_examples": 50}
    a = entry.load(cfg, SHARED, _bundle())
    b = entry.load(cfg, SHARED, _bundle())
    assert len(a.train) == 100 and len(a.evals["val"]) == 50
    assert a.train.indices == b.train.indices and a.train.indices != list(range(100))
    assert len({a.train.label(i) for i in range(100)}) == 10  # a mix of classes, not the first 100 rows


@needs_mnist
def test_image_folder_of_real_digits(tmp_path: Path, offline: None) -> None:
    from PIL import Image

    x = read_idx(SHARED / "mnist" / "t10k-images-idx3-ubyte.gz")
    y = read_idx(SHARED / "mnist" / "t10k-labels-idx1-ubyte.gz")
    root = tmp_path / "digits"
    written = {"train": [], "val": []}
    for digit in (0, 1, 2):
        idx = np.flatnonzero(y == digit)[:5]
        for j, i in enumerate(idx):
            split = "train" if j < 3 else "val"
            path = root / split / str(digit) / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[i]).save(path)
            written[split].append((digit, i))

    cfg = {"image_folder": str(root), "max_train_examples": None, "max_eval_examples": None}
    entry = TASKS.get("mnist")
    entry.check_available(cfg, None)
    info = resolve_task_info("mnist", cfg, None)
    assert info.class_names == ("0", "1", "2") and info.num_labels == 3
    data = entry.load(cfg, None, _bundle())
    train, val = data.train, data.evals["val"]
    assert (len(train), len(val)) == (9, 6)
    assert sorted(train.label(i) for i in range(9)) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert data.info["source"] == f"image_folder:{root}" and data.info["class_names"] == ["0", "1", "2"]
    # pixels survive the PNG round trip
    ex = train[0]
    assert ex["labels"] == 0
    first = sorted(written["train"], key=lambda t: (t[0], f"{t[1]}.png"))[0][1]
    ref = _bundle().preprocess(Image.fromarray(x[first]).convert("RGB"))
    torch.testing.assert_close(ex["pixel_values"], ref)

    # the model head must be built from the resolved info
    mismatched = SimpleNamespace(
        preprocess=_bundle().preprocess, model=SimpleNamespace(class_names=tuple("0123456789"))
    )
    with pytest.raises(UserError, match="resolve_task_info"):
        entry.load(cfg, None, mismatched)
    matched = SimpleNamespace(preprocess=_bundle().preprocess, model=SimpleNamespace(class_names=info.class_names))
    assert len(entry.load(cfg, None, matched).train) == 9


def test_folder_class_names(tmp_path: Path) -> None:
    def make(name: str, folders: list[str]) -> Path:
        for split in ("train", "val"):
            for f in folders:
                (tmp_path / name / split / f).mkdir(parents=True)
        return tmp_path / name

    gtsrb = make("gtsrb", [f"{i:05d}" for i in range(43)])
    assert images.folder_class_names("gtsrb", gtsrb) == TASKS.get("gtsrb").info.class_names
    named = make("named", ["maple_tree", "apple"])
    assert images.folder_class_names("cifar100", named) == ("apple", "maple tree")
    (named / "classnames.txt").write_text("apple\tred apple\nmaple_tree\tmaple\n")
    assert images.folder_class_names("cifar100", named) == ("red apple", "maple")
    wnids = make("imagenet", [f"n{i:08d}" for i in range(1000)])
    info = resolve_task_info("imagenet", {"image_folder": str(wnids)}, None)
    assert info is TASKS.get("imagenet").info


def test_offline_errors_are_one_line(offline: None, tmp_path: Path) -> None:
    for name in ("svhn", "gtsrb", "cifar10", "cifar100"):
        with pytest.raises(UserError) as err:
            TASKS.get(name).check_available({}, tmp_path)
        msg = str(err.value)
        assert "\n" not in msg and str(tmp_path / name) in msg and "task.image_folder" in msg
    with pytest.raises(UserError) as err:
        TASKS.get("imagenet").check_available({"image_folder": None}, None)
    assert "\n" not in str(err.value) and "task.image_folder" in str(err.value)
    with pytest.raises(UserError, match="val/"):
        (tmp_path / "half" / "train" / "a").mkdir(parents=True)
        TASKS.get("cifar10").check_available({"image_folder": str(tmp_path / "half")}, None)
    for split in ("train", "val"):
        (tmp_path / "full" / split / "a").mkdir(parents=True)
    TASKS.get("imagenet").check_available({"image_folder": str(tmp_path / "full")}, None)
    with pytest.raises(UserError, match="positive"):
        TASKS.get("imagenet").check_available({"image_folder": str(tmp_path / "full"), "max_train_examples": 0}, None)


def test_metric_and_collate() -> None:
    assert images.top1(np.array([1, 2, 3, 0]), np.array([1, 2, 0, 0])) == {"top1": 0.75}
    batch = images.collate(
        [{"pixel_values": torch.zeros(3, 4, 4), "labels": 1}, {"pixel_values": torch.ones(3, 4, 4), "labels": 0}]
    )
    assert batch["pixel_values"].shape == (2, 3, 4, 4) and batch["labels"].tolist() == [1, 0]
