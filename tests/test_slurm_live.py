"""The 4-cell sweep against a live single-node SLURM with accounting (tests/slurm_cluster.py: Debian's
slurmctld, slurmd, slurm-client, munge, slurmdbd over MariaDB), choosing nothing but the CPU launcher:

1. the sweep starts; one job is preempted (USR2, as SLURM signals before a time limit: submitit
   requeues it and the requeued job completes its cell) and one is cancelled while its cell runs;
   the sweep reports the cancelled cell and exits 1 once the others are done, without hanging;
2. the rerun submits only the cancelled cell and exits 0 with 4 ok records;
3. every process the test started is gone afterwards, checked by PID.

Runs as root on Debian (it installs the packages: ~22 s of apt on a fresh machine, none after);
skipped elsewhere, with the reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.slurm_cluster import Cluster, install_packages, unavailable_reason
from tests.test_slurm_launcher import tiny_glue

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(420)]
REASON = unavailable_reason()
SWEEP = [
    "-m",
    "hydra/launcher=slurm_cpu",
    "model=tiny_bert",
    "task=rte,mrpc",
    "pruner=magnitude,seven_pre",
    "sparsity=0.5",
    # long enough (~600 tiny steps, a checkpoint every 6) for the cancel and the preemption to land mid-cell on a
    # loaded machine: with the trainer.max_steps=3 a cell can finish before squeue shows it running
    "trainer.batch_size=4",
    "trainer.epochs=100",
    "trainer.max_steps=600",
]


def seven_bench(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "seven_bench.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def slurm(command: list[str], env: dict[str, str]) -> str:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, check=True).stdout


def scancel(args: list[str], env: dict[str, str]) -> None:
    """scancel, not waited for beyond 10 s: a USR2 makes submitit requeue the job at once, and scancel then
    retries for a while ("Job can not be altered now, try again later") although the signal got there."""
    try:
        subprocess.run(["scancel", *args], env=env, capture_output=True, timeout=10, check=False)
    except subprocess.TimeoutExpired:
        pass


def requeued(job_id: str, env: dict[str, str]) -> bool:
    out = subprocess.run(["scontrol", "show", "job", job_id], env=env, capture_output=True, text=True, timeout=30)
    return "Restarts=1" in out.stdout and "JobState=PENDING" in out.stdout


def wait_for(what: str, check: object, timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()  # type: ignore[operator]
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"no {what} after {timeout:.0f} s")


def running_in_cell(results: Path, env: dict[str, str]) -> dict[str, Path]:
    """{array task id: its stdout log} of the jobs that have started (the job printed its thread line:
    submitit's signal handlers are in place). Hydra may still be composing the cell's config: a preemption
    there must requeue the job too (launcher.masked_exit), which one CI run under load caught."""
    running = {}
    for line in slurm(["squeue", "--noheader", "--array", "--format=%i %T"], env).splitlines():
        job_id, state = line.split()
        logs = list(results.glob(f"hydra/multirun/*/*/.submitit/{job_id}/{job_id}_0_log.out"))
        if state == "RUNNING" and logs and "thread(s)" in logs[0].read_text():
            running[job_id] = logs[0]
    return running


@pytest.mark.skipif(REASON is not None, reason=f"live SLURM test: {REASON}")
def test_sweep_on_a_live_cluster_survives_cancel_and_preemption_and_reruns_only_the_missing_cell(
    tmp_path: Path,
) -> None:
    timings = {}
    try:
        timings["apt"] = install_packages()
    except RuntimeError as err:  # an offline machine: the packages cannot be had, nothing here to test
        pytest.skip(f"live SLURM test: {err}")
    cluster = Cluster()
    try:
        timings["start"] = cluster.start()
        env = {
            **os.environ,
            **cluster.env(),
            "SEVEN_BENCH_DATA": str(tiny_glue(tmp_path / "data")),
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        }
        for var in ("OMP_NUM_THREADS", *(k for k in os.environ if k.startswith("SEVEN_BENCH_SLURM_"))):
            env.pop(var, None)  # the launcher's defaults, and threads from SLURM's grant alone
        results = tmp_path / "results"
        args = [*SWEEP, f"results_dir={results}", "progress=false", "hydra.launcher.lost_after_s=5"]

        # 1. preempt one job and cancel another while their cells run
        started = time.monotonic()
        first = seven_bench(args, env, tmp_path)
        running: dict[str, Path] = wait_for(  # type: ignore[assignment]
            "two jobs in their cells", lambda: r if len(r := running_in_cell(results, env)) >= 2 else None, 240
        )
        cancelled, preempted = sorted(running)[:2]
        scancel([cancelled], env)  # first: its cell has a few seconds left to run
        scancel(["--signal=USR2", preempted], env)
        # SLURM keeps a requeued job pending for ~2 min (Reason=BeginTime); an admin's nudge, not ours to test
        wait_for("the preempted job requeued", lambda: requeued(preempted, env), 60)
        subprocess.run(["scontrol", "update", f"JobId={preempted}", "StartTime=now"], env=env, timeout=30, check=False)
        out, _ = first.communicate(timeout=240)
        timings["sweep"] = time.monotonic() - started
        print(out)  # what a user sees (pytest -s)
        assert first.returncode == 1, out
        assert f"(SLURM job {cancelled}): interrupted: SLURM job {cancelled} ended (CANCELLED)" in out, out
        assert "sweep of 4 cell(s): 3 ok, 0 skipped, 0 failed, 1 interrupted" in out, out
        preempted_log = running[preempted].read_text()
        assert "Requeued job" in preempted_log or "requeue" in preempted_log.lower(), preempted_log[-2000:]
        assert "1 thread(s)" in preempted_log  # slurm_cpu: 1 CPU per job, 1 thread on a node with more

        # 2. the rerun submits the cancelled cell only
        started = time.monotonic()
        second = seven_bench(args, env, tmp_path)
        out, _ = second.communicate(timeout=240)
        timings["rerun"] = time.monotonic() - started
        print(out)
        assert second.returncode == 0, out
        assert "1 cell(s) submitted" in out and out.count("complete: not submitted") == 3, out
        assert "sweep of 4 cell(s): 4 ok, 0 skipped, 0 failed, 0 interrupted; 3 already complete, not submitted" in out
        records = [json.loads(p.read_text()) for p in (results / "runs").glob("*/record.json")]
        assert sorted(r["status"] for r in records) == ["ok"] * 4
        arrays = {line.split("_")[0] for line in slurm(["sacct", "-X", "-n", "-P", "-o", "JobID"], env).split()}
        assert len(arrays) == 2  # one array per run, and the rerun's holds one task
    finally:
        survivors = cluster.stop()
        print(f"live SLURM timings (s): {', '.join(f'{k} {v:.0f}' for k, v in timings.items())}")
    assert survivors == [], f"processes still alive after the cluster stopped: {survivors}"
    for name, proc in cluster.daemons.items():
        assert proc.poll() is not None, f"{name} (pid {proc.pid}) is still running"
    cluster.remove()
