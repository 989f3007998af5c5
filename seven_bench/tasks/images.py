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

import os
import re
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from seven_bench.errors import UserError
from seven_bench.sources import DATA_ENV, host_reachable, offline_forced
from seven_bench.tasks.base import TASKS, TaskData, TaskEntry, TaskInfo
from seven_bench.tasks.image_data import CIFAR10_CLASSES as CIFAR10_CLASSES
from seven_bench.tasks.image_data import CIFAR100_CLASSES as CIFAR100_CLASSES
from seven_bench.tasks.image_data import DIGITS as DIGITS
from seven_bench.tasks.image_data import GTSRB_CLASSES as GTSRB_CLASSES
from seven_bench.tasks.image_data import IMAGE_SPECS, IMAGENET_CLASSES, _load_mnist_arrays, _mnist_present
from seven_bench.tasks.image_data import MNIST_TRAIN_FRACTION as MNIST_TRAIN_FRACTION
from seven_bench.tasks.image_data import mnist_file as mnist_file
from seven_bench.tasks.image_data import read_idx as read_idx
from seven_bench.tasks.image_examples import ArrayImages, FileImages, ImageExamples, collate, subsample, top1

CACHE_ENV = "SEVEN_BENCH_CACHE"
_WNID = re.compile(r"^n\d{8}$")


def _cache_dir(name: str) -> Path:
    base = os.environ.get(CACHE_ENV) or "~/.cache/seven-bench"
    return Path(base).expanduser() / "torchvision" / name


def _host_reachable(host: str | None, port: int = 443) -> bool:
    return bool(host) and not offline_forced() and host_reachable(host, port)


# ---------------------------------------------------------------------------------- image folder
def _folder_classes(folder: Path) -> list[str]:
    train = folder / "train"
    return sorted(e.name for e in os.scandir(train) if e.is_dir())  # ImageFolder's order


def _check_image_folder(task: str, folder: Path) -> None:
    if not folder.is_dir():
        raise UserError(
            f"task.image_folder={folder} does not exist: pass a folder with train/ and val/ holding one "
            "sub-folder per class"
        )
    missing = [s for s in ("train", "val") if not (folder / s).is_dir()]
    if missing:
        raise UserError(
            f"task.image_folder={folder} has no {' or '.join(m + '/' for m in missing)}: {task} needs train/ "
            "and val/ with one sub-folder per class"
        )
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
            raise UserError(
                f"{names_file} has {len(lines)} names but {folder / 'train'} has {len(folders)} class sub-folders"
            )
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
        return (
            (base / "GTSRB" / "Training").is_dir()
            and (base / "GTSRB" / "Final_Test" / "Images").is_dir()
            and (base / "GT-final_test.csv").is_file()
        )
    if task == "cifar10":
        return (folder / "cifar-10-batches-py" / "test_batch").is_file() and (
            folder / "cifar-10-batches-py" / "data_batch_1"
        ).is_file()
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
        raise UserError(
            "task=imagenet needs task.image_folder=<dir with train/ and val/ holding one sub-folder per "
            f"wnid> (or {where}/{{train,val}})"
        )
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
        f"task={task} has no data: put {spec['expect']} under {where}, or pass task.image_folder=<dir with "
        "train/ and val/>; "
        f"the download host {spec['host']} is unreachable"
    )


def _torchvision_sources(task: str, path: Path, download: bool) -> tuple[Any, Any]:
    import torchvision.datasets as tvd

    if download:
        path.mkdir(parents=True, exist_ok=True)
    if task == "svhn":
        return tvd.SVHN(str(path), split="train", download=download), tvd.SVHN(
            str(path), split="test", download=download
        )
    if task == "gtsrb":
        return tvd.GTSRB(str(path), split="train", download=download), tvd.GTSRB(
            str(path), split="test", download=download
        )
    if task == "cifar10":
        return tvd.CIFAR10(str(path), train=True, download=download), tvd.CIFAR10(
            str(path), train=False, download=download
        )
    if task == "cifar100":
        return tvd.CIFAR100(str(path), train=True, download=download), tvd.CIFAR100(
            str(path), train=False, download=download
        )
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
            warnings.append(
                f"{task}: val/ lacks {len(val_missing)} of the {len(folders)} train classes "
                f"({', '.join(val_missing[:5])})"
            )
        extra = sorted(set(e.name for e in os.scandir(path / "val") if e.is_dir()) - set(folders))
        if extra:
            warnings.append(f"{task}: val/ sub-folders not in train/ are ignored: {', '.join(extra[:5])}")
        if len(train_src) == 0 or len(eval_src) == 0:
            raise UserError(
                f"task.image_folder={path}: no images found in {'train/' if len(train_src) == 0 else 'val/'}"
            )
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
                f"task={task}: the model head's class {i} is {model_classes[i]!r} but the data's is "
                f"{class_names[i]!r}: "
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
