"""The end of a sweep (`seven-bench -m`): one summary line of its cells (ok, skipped for bad input, failed,
interrupted) and a non-zero exit when any cell did not finish, so a script or CI sees a sweep whose cells
all failed. Hydra drops the jobs' return values, and with the joblib or SLURM launcher each job runs in
another process, so every job leaves its status in a small file in its own Hydra output folder, which the
main process reads back when the sweep ends (the SLURM launcher writes the files of the cells it did not
submit, and of jobs that died without writing one). Configured as a Hydra callback in conf/config.yaml."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from seven_bench.records import CELL_STATES, duration_label

STATUS_FILE = "cell_status.json"
STATES = ("ok", "skipped", "failed", "interrupted")


def write_job_status(output_dir: str | Path, status: dict[str, Any]) -> None:
    """Atomically, so a killed job leaves no half-written status."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{STATUS_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(status, default=str))
    os.replace(tmp, folder / STATUS_FILE)


def read_job_status(output_dir: str | Path) -> dict[str, Any] | None:
    """The status a job left in its output folder, or None (none yet, or unreadable)."""
    try:
        status = json.loads((Path(output_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


def plan_line(statuses: list[dict[str, Any]]) -> str:
    """One line of a `plan=true` sweep: how many distinct cells are done and how many are left (jobs that are
    one cell, such as a dense row swept over sparsities, count once), and what those left cost by the finished
    runs of their setups, so a study can be fitted to the machine time it has.

        done = {"status": "planned", "state": "done", "cell": "a"}
        left = {"status": "planned", "state": "to run", "cell": "b", "expected_seconds": 840.0}
        plan_line([done, done, left])
        # 'seven-bench: plan of 2 cell(s): 1 done, 0 resumes, 0 failed before, 1 to run; 1 left, about 14 min of
        #  compute for 1 of them at the speed of finished runs of their setups; 1 job(s) repeat ...'
    """
    cells = {s.get("cell"): s for s in statuses if s.get("status") == "planned"}
    counts = Counter(str(s.get("state")) for s in cells.values())
    line = f"seven-bench: plan of {len(cells)} cell(s): " + ", ".join(f"{counts[s]} {s}" for s in CELL_STATES)
    line += f"; {len(cells) - counts['done']} left"
    left = [s for s in cells.values() if s.get("state") != "done"]
    timed = [float(s["expected_seconds"]) for s in left if s.get("expected_seconds")]
    if timed:
        line += f", {duration_label(sum(timed))} of compute for {len(timed)} of them at the speed of finished runs"
        line += f" of their setups ({len(left) - len(timed)} untimed)" if len(timed) < len(left) else " of their setups"
    elif left:
        line += ", none with a finished run of its setup to time it by"
    if len(statuses) - len(cells):
        line += f"; {len(statuses) - len(cells)} job(s) repeat a cell or were skipped for bad input"
    return line


def summary_line(statuses: list[dict[str, Any]]) -> str:
    """One line of counts. Cells the SLURM launcher did not submit because their record was complete
    (`"submitted": false`) count as ok, and the line says how many they were.

        summary_line([{"status": "ok"}, {"status": "ok", "submitted": False}, {"status": "failed"}])
        # 'seven-bench: sweep of 3 cell(s): 2 ok, 0 skipped, 1 failed, 0 interrupted; 1 already complete, not submitted'
    """
    counts = Counter(str(s.get("status")) for s in statuses)
    parts = [f"{counts[state]} {state}" for state in STATES]
    parts += [f"{n} {state}" for state, n in sorted(counts.items()) if state not in STATES]
    line = f"seven-bench: sweep of {len(statuses)} cell(s): " + ", ".join(parts)
    complete = sum(1 for s in statuses if s.get("status") == "ok" and s.get("submitted") is False)
    return line + (f"; {complete} already complete, not submitted" if complete else "")


def _in_sweep(config: DictConfig) -> bool:
    """True in a sweep's job (also in a launcher's worker process, where on_multirun_start never ran)."""
    try:
        return str(config.hydra.mode) == "RunMode.MULTIRUN" or "MULTIRUN" in str(config.hydra.mode)
    except Exception:  # noqa: BLE001  (a config without hydra's node: not a sweep)
        return False


class SweepSummary(Callback):
    """Counts the sweep's cells by status and exits 1 when any was skipped, failed or interrupted."""

    def __init__(self) -> None:
        self.sweep_dir: Path | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        # A rerun into the same sweep folder must not count the previous run's jobs.
        for stale in self.sweep_dir.glob(f"**/{STATUS_FILE}"):
            stale.unlink(missing_ok=True)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if self.sweep_dir is None and not _in_sweep(config):  # a single cell writes nothing but its record
            return
        if job_return.status == JobStatus.COMPLETED:
            value = job_return.return_value
            status = value if isinstance(value, dict) else {"status": "ok"}
        else:  # an exception escaped the cell: Hydra holds it as the return value
            error = job_return._return_value
            status = {"status": "failed", "error": f"{type(error).__name__}: {error}".splitlines()[0]}
        write_job_status(config.hydra.runtime.output_dir, status)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        statuses = []
        for path in sorted((self.sweep_dir or Path(str(config.hydra.sweep.dir))).glob(f"**/{STATUS_FILE}")):
            try:
                statuses.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                statuses.append({"status": "failed", "error": f"unreadable {path}"})
        if statuses and any(s.get("status") == "planned" for s in statuses):
            print(plan_line(statuses), flush=True)
            return
        print(summary_line(statuses), flush=True)
        if any(s.get("status") != "ok" for s in statuses):
            raise SystemExit(1)
