"""Artifacts shared between cells: a lottery path's per-round masks, a pruned pre-trained model, a structured
search's solution path. Each lives under `results_dir/artifacts/<kind>-<key hash>/`, is keyed by everything
that determines it (never by sparsity when one artifact serves every sparsity), and appears only when
complete: files are written to a temporary name and renamed, and `done.json` is written last. Its producer
holds the folder's lock (`producing`), so cells of a parallel sweep that need the same artifact make it once:
the others wait, then load it."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, ContextManager, Iterator, Mapping

import torch

try:
    import fcntl
except ImportError:  # not POSIX: no cross-process lock; producers may then run twice (same result)
    fcntl = None  # type: ignore[assignment]

DONE = "done.json"
LOCK = ".lock"
log = logging.getLogger(__name__)


def key_hash(key: Mapping[str, Any]) -> str:
    """A stable 12-hex hash of a JSON-able key (sorted, so dict order does not matter)."""
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def save_tensors(path: Path, obj: Any) -> None:
    """torch.save to a temporary name in the same folder, then rename: a reader never sees half a file."""
    _atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_json(path: Path, obj: Any) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True, default=str)

    _atomic_write(path, write)


def load_tensors(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=False)


class Artifact:
    """One artifact folder. Parts (`part(name)`) may be written one by one (a path's rounds, as they
    finish), so a killed producer leaves the finished parts for the next run; `complete` says whether the
    producer declared the whole artifact done."""

    def __init__(self, root: Path, kind: str, key: Mapping[str, Any]):
        self.kind, self.key = kind, dict(key)
        self.dir = root / f"{kind}-{key_hash(key)}"

    def part(self, name: str) -> Path:
        return self.dir / name

    def has(self, name: str) -> bool:
        return self.part(name).is_file()

    def save(self, name: str, obj: Any) -> Path:
        path = self.part(name)
        if name.endswith(".json"):
            save_json(path, obj)
        else:
            save_tensors(path, obj)
        return path

    def load(self, name: str) -> Any:
        path = self.part(name)
        if name.endswith(".json"):
            return json.loads(path.read_text())
        return load_tensors(path)

    @property
    def complete(self) -> bool:
        return self.has(DONE)

    def finish(self, facts: Mapping[str, Any] | None = None) -> None:
        """Declare the artifact whole (its key and any facts beside it), last of all its writes."""
        self.save(DONE, {"kind": self.kind, "key": self.key, **dict(facts or {})})

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the folder's lock (flock: it dies with its process, so a killed producer never leaves the
        artifact locked). A second holder waits, saying so once."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / LOCK, "a") as fh:
            if fcntl is not None:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    log.warning("another cell is making %s (%s): waiting for it", self.kind, self.dir)
                    fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(fh, fcntl.LOCK_UN)

    def describe(self) -> dict[str, Any]:
        """What a run record says about an artifact it used or made."""
        return {"kind": self.kind, "path": str(self.dir), "key": self.key, "complete": self.complete}


class ArtifactStore:
    """`results_dir/artifacts/`: one folder per (kind, key)."""

    def __init__(self, results_dir: str | Path):
        self.root = Path(results_dir) / "artifacts"

    def get(self, kind: str, key: Mapping[str, Any]) -> Artifact:
        return Artifact(self.root, kind, key)


def producing(artifact: Artifact | None) -> ContextManager[None]:
    """`with producing(artifact):` around "load it if complete, else make it": one maker at a time."""
    return artifact.exclusive() if artifact is not None else nullcontext()
