"""Image classification tasks of SEVEN Table I: mnist, svhn, gtsrb, cifar10, cifar100, imagenet.

Data routes, first that works:
1. ``task.image_folder=<dir>`` with ``train/`` and ``val/`` of class sub-folders (any task; imagenet
   also looks at ``$SEVEN_BENCH_DATA/imagenet``). Class names are the sub-folder names (see
   ``folder_class_names``), so use ``resolve_task_info`` to get the TaskInfo a model head is built from.
2. ``$SEVEN_BENCH_DATA/<name>/`` in torchvision's layout, read with ``download=False`` (MNIST: the
   gzipped IDX files are read directly; without train images, the t10k set is split 80/20 and the
   record carries a warning).
3. A previous download in ``$SEVEN_BENCH_CACHE/torchvision/<name>`` (default ``~/.cache/seven-bench``).
4. torchvision ``download=True`` into that cache, only when the download host is reachable.

Examples are ``{"pixel_values": preprocess(PIL RGB image), "labels": int}``; the evaluation split is
named "val" (it is the official test split for the torchvision sets). torchvision is imported lazily.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import re
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from seven_bench.errors import UserError
from seven_bench.sources import DATA_ENV, host_reachable, offline_forced
from seven_bench.tasks import TASKS
from seven_bench.tasks.base import TaskData, TaskEntry, TaskInfo

CACHE_ENV = "SEVEN_BENCH_CACHE"
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
_WNID = re.compile(r"^n\d{8}$")


# ------------------------------------------------------------------------------- per-task facts
# name -> (class names, torchvision class, download host, expected local layout)
IMAGE_SPECS: dict[str, dict[str, Any]] = {
    "mnist": {"classes": DIGITS, "host": "ossci-datasets.s3.amazonaws.com",
              "expect": "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (+ train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz)",
              "desc": "MNIST digits (10 classes), CLIP prompt 'a photo of the number: \"{}\".'"},
    "svhn": {"classes": DIGITS, "host": "ufldl.stanford.edu", "port": 80, "expect": "train_32x32.mat, test_32x32.mat",
             "desc": "SVHN cropped digits (10 classes)"},
    "gtsrb": {"classes": GTSRB_CLASSES, "host": "sid.erda.dk",
              "expect": "gtsrb/GTSRB/Training/, gtsrb/GTSRB/Final_Test/Images/, gtsrb/GT-final_test.csv",
              "desc": "German traffic signs (43 classes, CLIP's class names)"},
    "cifar10": {"classes": CIFAR10_CLASSES, "host": "www.cs.toronto.edu", "expect": "cifar-10-batches-py/",
                "desc": "CIFAR-10 (10 classes)"},
    "cifar100": {"classes": CIFAR100_CLASSES, "host": "www.cs.toronto.edu", "expect": "cifar-100-python/",
                 "desc": "CIFAR-100 fine labels (100 classes)"},
    "imagenet": {"classes": IMAGENET_CLASSES, "host": None, "expect": "train/ and val/ with one sub-folder per wnid",
                 "desc": "ImageNet-1k from an ImageFolder (task.image_folder)"},
}


def _cache_dir(name: str) -> Path:
    base = os.environ.get(CACHE_ENV) or "~/.cache/seven-bench"
    return Path(base).expanduser() / "torchvision" / name


def _host_reachable(host: str | None, port: int = 443) -> bool:
    return bool(host) and not offline_forced() and host_reachable(host, port)


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


# ---------------------------------------------------------------------------------- image folder
def _folder_classes(folder: Path) -> list[str]:
    train = folder / "train"
    return sorted(e.name for e in os.scandir(train) if e.is_dir())  # ImageFolder's order


def _check_image_folder(task: str, folder: Path) -> None:
    if not folder.is_dir():
        raise UserError(f"task.image_folder={folder} does not exist: pass a folder with train/ and val/ holding one sub-folder per class")
    missing = [s for s in ("train", "val") if not (folder / s).is_dir()]
    if missing:
        raise UserError(f"task.image_folder={folder} has no {' or '.join(m + '/' for m in missing)}: {task} needs train/ and val/ with one sub-folder per class")
    if not _folder_classes(folder):
        raise UserError(f"task.image_folder={folder}: train/ has no class sub-folders")


def folder_class_names(task: str, folder: Path) -> tuple[str, ...]:
    """Class names of an ImageFolder, in label order (sorted sub-folders):
    - classnames.txt in the folder: one name per line in label order, or "<sub-folder><TAB><name>";
    - imagenet with 1000 wnid sub-folders: open_clip's (CLIP's) ImageNet names;
    - sub-folders named 0..K-1 (possibly zero-padded, e.g. GTSRB's 00000): the task's own names;
    - else the sub-folder names with underscores as spaces."""
    folders = _folder_classes(folder)
    names_file = folder / "classnames.txt"
    if names_file.is_file():
        lines = [ln.rstrip("\n") for ln in names_file.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if all("\t" in ln for ln in lines):
            mapping = dict(ln.split("\t", 1) for ln in lines)
            absent = [f for f in folders if f not in mapping]
            if absent:
                raise UserError(f"{names_file} names no class for sub-folders {', '.join(absent[:5])}")
            return tuple(mapping[f].strip() for f in folders)
        if len(lines) != len(folders):
            raise UserError(f"{names_file} has {len(lines)} names but {folder / 'train'} has {len(folders)} class sub-folders")
        return tuple(ln.strip() for ln in lines)
    static = IMAGE_SPECS[task]["classes"] if task in IMAGE_SPECS else ()
    if task == "imagenet" and len(folders) == len(IMAGENET_CLASSES) and all(_WNID.match(f) for f in folders):
        return IMAGENET_CLASSES
    if static and len(folders) <= len(static) and all(f.isdigit() for f in folders):
        ids = [int(f) for f in folders]
        if len(set(ids)) == len(ids) and max(ids) < len(static):
            return tuple(static[i] for i in ids)
    return tuple(f.replace("_", " ") for f in folders)


def _image_folder(cfg: Mapping[str, Any], task: str, root: Path | None) -> Path | None:
    value = cfg.get("image_folder") if cfg is not None else None
    if value:
        return Path(str(value)).expanduser()
    if task == "imagenet" and root is not None:
        candidate = root / "imagenet"
        if (candidate / "train").is_dir() and (candidate / "val").is_dir():
            return candidate
    return None


def resolve_task_info(task: str | TaskEntry, cfg: Mapping[str, Any] | None, root: Path | None = None) -> TaskInfo:
    """The TaskInfo a model's head must be built from: the registered one, or with an image folder, its
    class names and count. Loads nothing (lists sub-folders)."""
    entry = TASKS.get(task) if isinstance(task, str) else task
    folder = _image_folder(cfg or {}, entry.info.name, root)
    if folder is None:
        return entry.info
    _check_image_folder(entry.info.name, folder)
    names = folder_class_names(entry.info.name, folder)
    if names == entry.info.class_names:
        return entry.info
    return replace(entry.info, class_names=names, num_labels=len(names))


# ------------------------------------------------------------------------------------ routes
def dataset_present(task: str, folder: Path) -> bool:
    """Whether `folder` holds the task's files in torchvision's layout (seven-bench-prepare asks this too)."""
    if not folder.is_dir():
        return False
    if task == "mnist":
        return _mnist_present(folder)
    if task == "svhn":
        return (folder / "train_32x32.mat").is_file() and (folder / "test_32x32.mat").is_file()
    if task == "gtsrb":
        base = folder / "gtsrb"
        return (base / "GTSRB" / "Training").is_dir() and (base / "GTSRB" / "Final_Test" / "Images").is_dir() and (base / "GT-final_test.csv").is_file()
    if task == "cifar10":
        return (folder / "cifar-10-batches-py" / "test_batch").is_file() and (folder / "cifar-10-batches-py" / "data_batch_1").is_file()
    if task == "cifar100":
        return (folder / "cifar-100-python" / "train").is_file() and (folder / "cifar-100-python" / "test").is_file()
    return False


def _route(task: str, cfg: Mapping[str, Any], root: Path | None) -> tuple[str, Path]:
    """(kind, path): kind in image_folder | local | cache | download. Raises UserError if none works."""
    folder = _image_folder(cfg, task, root)
    if folder is not None:
        _check_image_folder(task, folder)
        return "image_folder", folder
    spec = IMAGE_SPECS[task]
    if task == "imagenet":
        where = f"{root / 'imagenet'}" if root is not None else f"${DATA_ENV}/imagenet"
        raise UserError(f"task=imagenet needs task.image_folder=<dir with train/ and val/ holding one sub-folder per wnid> (or {where}/{{train,val}})")
    local = root / task if root is not None else None
    if local is not None and dataset_present(task, local):
        return "local", local
    cache = _cache_dir(task)
    if dataset_present(task, cache):
        return "cache", cache
    if _host_reachable(spec["host"], spec.get("port", 443)):
        return "download", cache
    where = str(local) if local is not None else f"${DATA_ENV}/{task} (${DATA_ENV} is unset)"
    raise UserError(
        f"task={task} has no data: put {spec['expect']} under {where}, or pass task.image_folder=<dir with train/ and val/>; "
        f"the download host {spec['host']} is unreachable"
    )


def _torchvision_sources(task: str, path: Path, download: bool) -> tuple[Any, Any]:
    import torchvision.datasets as tvd

    if download:
        path.mkdir(parents=True, exist_ok=True)
    if task == "svhn":
        return tvd.SVHN(str(path), split="train", download=download), tvd.SVHN(str(path), split="test", download=download)
    if task == "gtsrb":
        return tvd.GTSRB(str(path), split="train", download=download), tvd.GTSRB(str(path), split="test", download=download)
    if task == "cifar10":
        return tvd.CIFAR10(str(path), train=True, download=download), tvd.CIFAR10(str(path), train=False, download=download)
    if task == "cifar100":
        return tvd.CIFAR100(str(path), train=True, download=download), tvd.CIFAR100(str(path), train=False, download=download)
    raise ValueError(task)


def _arrays_from_torchvision(ds: Any) -> ArrayImages | Any:
    """CIFAR/SVHN keep arrays in memory: wrap them as ArrayImages (fast labels); others as they are."""
    data, targets = getattr(ds, "data", None), getattr(ds, "targets", None)
    if targets is None:
        targets = getattr(ds, "labels", None)
    if isinstance(data, np.ndarray) and targets is not None:
        if data.ndim == 4 and data.shape[1] == 3:  # SVHN: [N, 3, H, W]
            data = np.ascontiguousarray(data.transpose(0, 2, 3, 1))
        return ArrayImages(data, np.asarray(targets))
    if hasattr(ds, "_samples"):  # GTSRB: (path, label) list
        return FileImages(ds._samples)
    return ds


def _load(task: str, cfg: Mapping[str, Any], root: Path | None, bundle: Any) -> TaskData:
    cfg = cfg or {}
    kind, path = _route(task, cfg, root)
    warnings: list[str] = []
    class_names = IMAGE_SPECS[task]["classes"]
    if kind == "image_folder":
        from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

        class_names = folder_class_names(task, path)
        folders = _folder_classes(path)
        class_to_idx = {f: i for i, f in enumerate(folders)}
        train_src = FileImages(make_dataset(str(path / "train"), class_to_idx, IMG_EXTENSIONS, allow_empty=True))
        eval_src = FileImages(make_dataset(str(path / "val"), class_to_idx, IMG_EXTENSIONS, allow_empty=True))
        val_missing = [f for f in folders if not (path / "val" / f).is_dir()]
        if val_missing:
            warnings.append(f"{task}: val/ lacks {len(val_missing)} of the {len(folders)} train classes ({', '.join(val_missing[:5])})")
        extra = sorted(set(e.name for e in os.scandir(path / "val") if e.is_dir()) - set(folders))
        if extra:
            warnings.append(f"{task}: val/ sub-folders not in train/ are ignored: {', '.join(extra[:5])}")
        if len(train_src) == 0 or len(eval_src) == 0:
            raise UserError(f"task.image_folder={path}: no images found in {'train/' if len(train_src) == 0 else 'val/'}")
        source = f"image_folder:{path}"
    elif task == "mnist":
        if kind == "download":
            import torchvision.datasets as tvd

            path.mkdir(parents=True, exist_ok=True)
            tvd.MNIST(str(path), train=True, download=True)
            tvd.MNIST(str(path), train=False, download=True)
        (trx, try_), (tex, tey), warnings = _load_mnist_arrays(path)
        train_src, eval_src = ArrayImages(trx, try_), ArrayImages(tex, tey)
        source = f"{kind}:{path}"
    else:
        train_ds, eval_ds = _torchvision_sources(task, path, download=(kind == "download"))
        train_src, eval_src = _arrays_from_torchvision(train_ds), _arrays_from_torchvision(eval_ds)
        source = f"{kind}:{path}"

    model_classes = getattr(getattr(bundle, "model", None), "class_names", None)
    if model_classes:
        if len(model_classes) != len(class_names):
            raise UserError(
                f"task={task} data has {len(class_names)} classes but the model head has {len(model_classes)}: "
                f"build the model from seven_bench.tasks.images.resolve_task_info(...)"
            )
        diff = [i for i, (a, b) in enumerate(zip(model_classes, class_names)) if a != b]
        if diff:
            i = diff[0]
            raise UserError(
                f"task={task}: the model head's class {i} is {model_classes[i]!r} but the data's is {class_names[i]!r}: "
                f"build the model from seven_bench.tasks.images.resolve_task_info(...)"
            )

    preprocess = getattr(bundle, "preprocess", None)
    train = ImageExamples(train_src, subsample(len(train_src), cfg.get("max_train_examples")), preprocess)
    val = ImageExamples(eval_src, subsample(len(eval_src), cfg.get("max_eval_examples"), seed=1), preprocess)
    info: dict[str, Any] = {
        "source": source,
        "num_classes": len(class_names),
        "train_examples": len(train),
        "eval_examples": {"val": len(val)},
        "full_train_examples": len(train_src),
        "full_eval_examples": {"val": len(eval_src)},
        "warnings": warnings,
    }
    if kind == "image_folder" and len(class_names) <= 100:
        info["class_names"] = list(class_names)
    return TaskData(train=train, evals={"val": val}, collate=collate, metric=top1, info=info)


def _check(task: str, cfg: Mapping[str, Any], root: Path | None) -> None:
    _route(task, cfg or {}, root)
    for key in ("max_train_examples", "max_eval_examples"):
        value = (cfg or {}).get(key)
        if value is not None and int(value) <= 0:
            raise UserError(f"task.{key} must be a positive integer or null, got {value}")


def _register(task: str) -> None:
    spec = IMAGE_SPECS[task]
    info = TaskInfo(
        name=task,
        modality="image",
        num_labels=len(spec["classes"]),
        reported_metric="top1",
        class_names=tuple(spec["classes"]),
        description=spec["desc"],
    )
    TASKS.add(
        task,
        TaskEntry(
            info=info,
            check_available=partial(_check, task),
            load=partial(_load, task),
            resolve_info=lambda cfg, root, task=task: resolve_task_info(task, cfg, root),
        ),
    )


for _task in ("mnist", "svhn", "gtsrb", "cifar10", "cifar100", "imagenet"):
    _register(_task)
