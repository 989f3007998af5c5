"""Static facts of the image tasks (images): class names in label order, per-task specs (classes,
download host, expected local layout), and MNIST's gzipped IDX files, read directly."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from seven_bench.errors import UserError

MNIST_TRAIN_FRACTION = 0.8

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# Fine labels in index order (torchvision / the pickled meta file), underscores as spaces as in CLIP's prompts.
CIFAR100_CLASSES = tuple(
    c.replace("_", " ")
    for c in (
        "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
        "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
        "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
        "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
        "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
        "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger "
        "tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
    ).split()
)
DIGITS = tuple(str(i) for i in range(10))
# The 43 GTSRB classes in ClassId order, named as in CLIP's prompts (openai/CLIP data/prompts.md).
GTSRB_CLASSES = (
    "red and white circle 20 kph speed limit",
    "red and white circle 30 kph speed limit",
    "red and white circle 50 kph speed limit",
    "red and white circle 60 kph speed limit",
    "red and white circle 70 kph speed limit",
    "red and white circle 80 kph speed limit",
    "end / de-restriction of 80 kph speed limit",
    "red and white circle 100 kph speed limit",
    "red and white circle 120 kph speed limit",
    "red and white circle red car and black car no passing",
    "red and white circle red truck and black car no passing",
    "red and white triangle road intersection warning",
    "white and yellow diamond priority road",
    "red and white upside down triangle yield right-of-way",
    "stop",
    "empty red and white circle",
    "red and white circle no truck entry",
    "red circle with white horizonal stripe no entry",
    "red and white triangle with exclamation mark warning",
    "red and white triangle with black left curve approaching warning",
    "red and white triangle with black right curve approaching warning",
    "red and white triangle with black double curve approaching warning",
    "red and white triangle rough / bumpy road warning",
    "red and white triangle car skidding / slipping warning",
    "red and white triangle with merging / narrow lanes warning",
    "red and white triangle with person digging / construction / road work warning",
    "red and white triangle with traffic light approaching warning",
    "red and white triangle with person walking warning",
    "red and white triangle with child and person walking warning",
    "red and white triangle with bicyle warning",
    "red and white triangle with snowflake / ice warning",
    "red and white triangle with deer warning",
    "white circle with gray strike bar no speed limit",
    "blue circle with white right turn arrow mandatory",
    "blue circle with white left turn arrow mandatory",
    "blue circle with white forward arrow mandatory",
    "blue circle with white forward or right turn arrow mandatory",
    "blue circle with white forward or left turn arrow mandatory",
    "blue circle with white keep right arrow mandatory",
    "blue circle with white keep left arrow mandatory",
    "blue circle with white arrows indicating a traffic circle",
    "white circle with gray strike bar indicating no passing for cars has ended",
    "white circle with gray strike bar indicating no passing for trucks has ended",
)


def _imagenet_classnames() -> tuple[str, ...]:
    """open_clip's IMAGENET_CLASSNAMES (CLIP's cleaned names, sorted-wnid order), read from its
    metadata file without importing open_clip (keeps the registry import fast)."""
    spec = importlib.util.find_spec("open_clip")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        path = Path(loc) / "zero_shot_metadata.py"
        if path.is_file():
            mod_spec = importlib.util.spec_from_file_location("_seven_bench_oc_zero_shot_metadata", path)
            module = importlib.util.module_from_spec(mod_spec)  # type: ignore[arg-type]
            mod_spec.loader.exec_module(module)  # type: ignore[union-attr]
            return tuple(module.IMAGENET_CLASSNAMES)
    return tuple(f"class {i}" for i in range(1000))


IMAGENET_CLASSES = _imagenet_classnames()


# ------------------------------------------------------------------------------- per-task facts
# name -> (class names, torchvision class, download host, expected local layout)
IMAGE_SPECS: dict[str, dict[str, Any]] = {
    "mnist": {
        "classes": DIGITS,
        "host": "ossci-datasets.s3.amazonaws.com",
        "expect": "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (+ train-images-idx3-ubyte.gz, "
        "train-labels-idx1-ubyte.gz)",
        "desc": "MNIST digits (10 classes), CLIP prompt 'a photo of the number: \"{}\".'",
    },
    "svhn": {
        "classes": DIGITS,
        "host": "ufldl.stanford.edu",
        "port": 80,
        "expect": "train_32x32.mat, test_32x32.mat",
        "desc": "SVHN cropped digits (10 classes)",
    },
    "gtsrb": {
        "classes": GTSRB_CLASSES,
        "host": "sid.erda.dk",
        "expect": "gtsrb/GTSRB/Training/, gtsrb/GTSRB/Final_Test/Images/, gtsrb/GT-final_test.csv",
        "desc": "German traffic signs (43 classes, CLIP's class names)",
    },
    "cifar10": {
        "classes": CIFAR10_CLASSES,
        "host": "www.cs.toronto.edu",
        "expect": "cifar-10-batches-py/",
        "desc": "CIFAR-10 (10 classes)",
    },
    "cifar100": {
        "classes": CIFAR100_CLASSES,
        "host": "www.cs.toronto.edu",
        "expect": "cifar-100-python/",
        "desc": "CIFAR-100 fine labels (100 classes)",
    },
    "imagenet": {
        "classes": IMAGENET_CLASSES,
        "host": None,
        "expect": "train/ and val/ with one sub-folder per wnid",
        "desc": "ImageNet-1k from an ImageFolder (task.image_folder)",
    },
}


# ----------------------------------------------------------------------------------- MNIST (IDX)
def mnist_file(folder: Path, stem: str) -> Path | None:
    for d in (folder, folder / "MNIST" / "raw", folder / "raw"):
        for name in (f"{stem}.gz", stem):
            if (d / name).is_file():
                return d / name
    return None


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped): big-endian magic (0x0000 type ndim), dims, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[:4], "big")
    if magic >> 8 != 0x08:
        raise UserError(f"{path} is not a uint8 IDX file (magic {magic:#010x})")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise UserError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {data.size}")
    return data.reshape(dims)


def _mnist_present(folder: Path) -> bool:
    return all(mnist_file(folder, s) for s in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))


def _load_mnist_arrays(folder: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], list[str]]:
    """(train images, labels), (eval images, labels), warnings."""
    test_x = read_idx(mnist_file(folder, "t10k-images-idx3-ubyte"))  # type: ignore[arg-type]
    test_y = read_idx(mnist_file(folder, "t10k-labels-idx1-ubyte"))  # type: ignore[arg-type]
    train_xf = mnist_file(folder, "train-images-idx3-ubyte")
    train_yf = mnist_file(folder, "train-labels-idx1-ubyte")
    if train_xf is not None and train_yf is not None:
        return (read_idx(train_xf), read_idx(train_yf)), (test_x, test_y), []
    n_train = int(round(MNIST_TRAIN_FRACTION * len(test_y)))
    missing = "train-images-idx3-ubyte.gz" if train_xf is None else "train-labels-idx1-ubyte.gz"
    warning = (
        f"mnist: {missing} is missing under {folder}; train/eval are a deterministic split of the "
        f"{len(test_y)} t10k test images (first {n_train} train, last {len(test_y) - n_train} eval), "
        f"so accuracies are not comparable to the paper's MNIST numbers"
    )
    return (test_x[:n_train], test_y[:n_train]), (test_x[n_train:], test_y[n_train:]), [warning]
