"""Where data and weights come from: a local route tried first, the hub second.

Every check here is cheap and loads nothing, so the CLI can refuse an impossible cell before any
model or dataset is touched.
"""

from __future__ import annotations

import hashlib
import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

DATA_ENV = "SEVEN_BENCH_DATA"
HUB_HOST = "huggingface.co"


def data_root() -> Path | None:
    """The local data root from $SEVEN_BENCH_DATA (None when unset)."""
    value = os.environ.get(DATA_ENV)
    return Path(value).expanduser() if value else None


def offline_forced() -> bool:
    return any(
        os.environ.get(v, "").lower() in {"1", "true", "yes"}
        for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


@lru_cache(maxsize=None)
def host_reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """One TCP connection attempt per (host, port) and process: dataset mirrors differ from the hub."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the Hugging Face hub can be reached (and offline mode is not forced)."""
    return not offline_forced() and host_reachable(HUB_HOST, 443, timeout)


def hf_cached(repo_id: str, filename: str = "config.json") -> bool:
    """True when `filename` of `repo_id` is already in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename)
    return isinstance(found, str)


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file, computed once per process for each (path, size, mtime): a sweep hashes a
    data file once, and a changed file again."""
    stat = Path(path).stat()
    return _digest(str(path), stat.st_size, stat.st_mtime_ns, algorithm)


@lru_cache(maxsize=256)
def _digest(path: str, size: int, mtime_ns: int, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint_files(paths: Iterable[Path], root: Path | None) -> list[dict[str, Any]]:
    """[{path (relative to the data root where it lies under it), size, sha256}] of the local files a cell
    reads: in the cell's spec, so a truncated or edited file makes a different cell, and in its record."""
    out = []
    for path in paths:
        stat = Path(path).stat()
        try:
            shown = str(Path(path).resolve().relative_to(Path(root).resolve())) if root is not None else str(path)
        except ValueError:
            shown = str(path)
        out.append({"path": shown, "size": stat.st_size, "sha256": file_digest(path)})
    return out
