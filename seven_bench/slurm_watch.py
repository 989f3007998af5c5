"""Waiting for a sweep's SLURM jobs without hanging on a job that died.

submitit waits for a job until its result file appears or `sacct` calls it finished. Without SLURM
accounting (no slurmdbd) `sacct` fails ("Bypassing sacct error ... status may be inaccurate"), and a job
that was cancelled, killed or lost with its node leaves the submitting `seven-bench -m` waiting forever.
Here a job is finished when its result file exists, and lost when `squeue` (which needs no accounting)
has stopped listing it for `lost_after_s` seconds with still no result file: that grace covers a
shared filesystem that shows the file late. `sacct` is asked only to name what happened to a lost job
(CANCELLED, TIMEOUT, OUT_OF_MEMORY...), when accounting is there to answer.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

log = logging.getLogger("seven_bench")

# SLURM end states that stop a cell from outside (it can resume): the rest mean the job itself failed.
INTERRUPTED_STATES = frozenset({"CANCELLED", "PREEMPTED", "TIMEOUT", "DEADLINE"})
UNKNOWN_STATE = "unknown: no SLURM accounting to ask"

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def run_command(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=60, check=False)


@dataclass
class LostJob:
    job_id: str
    state: str  # sacct's State (first word), or UNKNOWN_STATE

    @property
    def status(self) -> str:
        """The cell's status in the sweep summary: interrupted from outside, or failed."""
        return "interrupted" if self.state in INTERRUPTED_STATES else "failed"


def queued_jobs(job_ids: Iterable[str], run: Runner = run_command) -> set[str] | None:
    """The ids among `job_ids` (array tasks as `<array>_<task>`) that squeue still lists, pending,
    running, completing or requeued; None when squeue could not answer (then nothing is judged lost)."""
    ids = sorted(set(job_ids))
    if not ids:
        return set()
    arrays = sorted({job_id.split("_")[0] for job_id in ids})
    try:
        done = run(["squeue", "--noheader", "--array", "--format=%i", f"--jobs={','.join(arrays)}"])
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("squeue failed (%s): will ask again", err)
        return None
    if done.returncode != 0:
        if "invalid job id" in (done.stderr or "").lower():  # every job already left the controller's memory
            return set()
        log.warning("squeue failed (%s): will ask again", (done.stderr or "").strip())
        return None
    listed = {line.strip() for line in (done.stdout or "").splitlines() if line.strip()}
    return {job_id for job_id in ids if job_id in listed}


def accounting_states(job_ids: Iterable[str], run: Runner = run_command) -> dict[str, str]:
    """sacct's State of each job, {} without accounting (sacct then fails, which is no error here)."""
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    try:
        done = run(["sacct", "--noheader", "--parsable2", "--allocations", "--format=JobID,State", "-j", ",".join(ids)])
    except (OSError, subprocess.SubprocessError):
        return {}
    if done.returncode != 0:
        return {}
    states = {}
    for line in (done.stdout or "").splitlines():
        job_id, _, state = line.partition("|")
        if job_id in ids and state:
            states[job_id] = state.split()[0]  # "CANCELLED by 0" -> CANCELLED
    return states


def _exists(path: Path) -> bool:
    """Whether `path` exists, refreshing the folder's attributes first (as submitit does: a shared
    filesystem's cache can hide a new file for a while)."""
    try:
        folder = path.parent
        os.chmod(folder, folder.stat().st_mode)
    except OSError:
        pass
    return path.exists()


class JobWatch:
    """Waits until every job has a result file or is lost. `jobs` are submitit jobs (`job_id`,
    `paths.result_pickle`). Calls squeue every `poll_s` seconds, nothing else unless a job is lost.

        lost = JobWatch(jobs, poll_s=5, lost_after_s=30).wait()   # {job_id: LostJob}
    """

    def __init__(
        self,
        jobs: Sequence[Any],
        poll_s: float = 5.0,
        lost_after_s: float = 30.0,
        run: Runner | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.jobs = {job.job_id: job for job in jobs}
        self.poll_s, self.lost_after_s = float(poll_s), float(lost_after_s)
        self.run, self.clock, self.sleep = run or run_command, clock, sleep

    def wait(self) -> dict[str, LostJob]:
        pending = dict(self.jobs)
        gone_since: dict[str, float] = {}
        lost: dict[str, LostJob] = {}
        next_query = self.clock()
        while True:
            for job_id in [j for j, job in pending.items() if _exists(job.paths.result_pickle)]:
                del pending[job_id]
                gone_since.pop(job_id, None)
            if not pending:
                return lost
            now = self.clock()
            if now >= next_query:
                next_query = now + self.poll_s
                listed = queued_jobs(pending, self.run)
                if listed is not None:
                    for job_id in pending:
                        if job_id in listed:
                            gone_since.pop(job_id, None)  # e.g. requeued after a preemption: listed again
                        else:
                            gone_since.setdefault(job_id, now)
            expired = [j for j, since in gone_since.items() if now - since >= self.lost_after_s]
            if expired:
                states = accounting_states(expired, self.run)
                for job_id in expired:
                    lost[job_id] = LostJob(job_id, states.get(job_id, UNKNOWN_STATE))
                    del pending[job_id], gone_since[job_id]
                continue
            self.sleep(min(1.0, self.poll_s))
