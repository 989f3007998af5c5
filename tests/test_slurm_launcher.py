"""The SLURM launcher without a cluster: the time-limit refusal, threads from the granted CPUs, finished
cells left out of the submission, and jobs that die noticed with or without accounting (squeue, sacct
and submitit's executor replaced by fakes). The live cluster is tests/test_slurm_live.py."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf, open_dict

from seven_bench import slurm_watch
from seven_bench.conf import compose_config
from seven_bench.errors import UserError
from seven_bench.records import SCHEMA_VERSION, load_record, record_path, write_record
from seven_bench.slurm import check_time_limit, granted_cpus, pin_threads, plan_cell
from seven_bench.slurm_watch import UNKNOWN_STATE, JobWatch
from seven_bench.sweep import read_job_status, summary_line

WORDS = "the a cat dog sat ran on under mat log big small red blue".split()


def tiny_glue(root: Path, train: int = 24, dev: int = 8) -> Path:
    """RTE and MRPC in the GLUE download layout, `train` and `dev` rows each, seeded: cells on them take
    seconds, and they are the same files (and so the same cells) every time."""
    rng = random.Random(0)

    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9)))

    for name, rows in (("train", train), ("dev", dev)):
        rte, mrpc = root / "glue" / "RTE", root / "glue" / "MRPC"
        rte.mkdir(parents=True, exist_ok=True)
        mrpc.mkdir(parents=True, exist_ok=True)
        labels = ("entailment", "not_entailment")
        (rte / f"{name}.tsv").write_text(
            "index\tsentence1\tsentence2\tlabel\n"
            + "".join(f"{i}\t{sentence()}\t{sentence()}\t{labels[i % 2]}\n" for i in range(rows))
        )
        (mrpc / f"{name}.tsv").write_text(
            "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
            + "".join(f"{i % 2}\t{i}\t{i + 1000}\t{sentence()}\t{sentence()}\n" for i in range(rows))
        )
    return root


# ------------------------------------------------------------------------------------ time limit
def test_a_time_limit_inside_the_signal_delay_is_refused_in_one_line() -> None:
    with pytest.raises(UserError) as err:
        check_time_limit(1, 120)
    message = str(err.value)
    assert "\n" not in message and "timeout_min=1" in message and "more than 3 min" in message
    with pytest.raises(UserError):
        check_time_limit(3, 120)  # 180 s: the signal (120 s before, up to 60 s early) lands at the start
    check_time_limit(4, 120)
    check_time_limit(2, 30)


def test_the_launcher_refuses_before_it_submits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hydra_plugins.seven_bench_slurm.launcher import SlurmLauncher

    launcher = SlurmLauncher(submitit_folder=str(tmp_path / "s"), timeout_min=1, signal_delay_s=120)
    launcher._executor = lambda: pytest.fail("submitted despite an impossible time limit")  # type: ignore[method-assign]
    with pytest.raises(SystemExit) as stop:
        launcher.launch([["model=tiny_bert"]], 0)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seven-bench: error: hydra.launcher.timeout_min=1 ")


# ------------------------------------------------------------------------------------ threads
def test_granted_cpus_prefers_the_per_task_grant() -> None:
    assert granted_cpus({"SLURM_CPUS_PER_TASK": "4", "SLURM_CPUS_ON_NODE": "64"}) == 4
    assert granted_cpus({"SLURM_CPUS_ON_NODE": "6"}) == 6
    assert granted_cpus({"SLURM_CPUS_PER_TASK": "", "SLURM_CPUS_ON_NODE": "x"}) is None
    assert granted_cpus({}) is None


def test_pin_threads_sets_torch_and_the_thread_variables() -> None:
    before = torch.get_num_threads()
    env = {"SLURM_CPUS_PER_TASK": "3", "OMP_NUM_THREADS": "16"}  # the submitting shell's count loses
    try:
        assert pin_threads(env) == 3
        assert torch.get_num_threads() == 3
        assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "3"
    finally:
        torch.set_num_threads(before)
    outside = {"OMP_NUM_THREADS": "16"}
    assert pin_threads(outside) is None and outside == {"OMP_NUM_THREADS": "16"}


def test_the_cpu_launcher_asks_for_no_gpu_and_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra.core.hydra_config import HydraConfig

    def launcher(*overrides: str) -> dict[str, Any]:
        cfg = compose_config(["hydra/launcher=slurm_cpu", *overrides], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)  # type: ignore[return-value]

    for var in ("CPUS", "MEM_GB", "GPUS", "TIME_MIN", "PARTITION", "ACCOUNT", "QOS"):
        monkeypatch.delenv(f"SEVEN_BENCH_SLURM_{var}", raising=False)
    cpu = launcher()
    assert (cpu["gpus_per_node"], cpu["cpus_per_task"], cpu["mem_gb"], cpu["partition"]) == (None, 1, 4, None)
    assert cpu["_target_"] == "hydra_plugins.seven_bench_slurm.launcher.SlurmLauncher"
    monkeypatch.setenv("SEVEN_BENCH_SLURM_CPUS", "8")
    monkeypatch.setenv("SEVEN_BENCH_SLURM_QOS", "low")
    monkeypatch.setenv("SEVEN_BENCH_SLURM_TIME_MIN", "90")
    cpu = launcher("hydra.launcher.mem_gb=12")  # the command line and the environment together
    assert (cpu["cpus_per_task"], cpu["qos"], cpu["timeout_min"], cpu["mem_gb"]) == (8, "low", 90, 12)


# ------------------------------------------------------------------------------------ preemption
def test_a_requeue_exit_that_cleanup_code_masked_still_exits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The live cluster once preempted a job while Hydra composed its config: submitit's handler requeued it and
    raised SystemExit inside OmegaConf's flag_override, whose `finally` failed in turn, so the job wrote an error
    result and the sweep counted a failed cell that SLURM was rerunning. The launcher now exits as asked."""
    from hydra_plugins.seven_bench_slurm.launcher import SlurmLauncher, masked_exit

    # The stock launcher as this class's MRO holds it: Hydra's plugin scan re-executes plugin modules, so the
    # class importable by name may be a later copy than the one SlurmLauncher was built on.
    stock_launcher = SlurmLauncher.__mro__[1]

    def composing_when_preempted(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            try:
                raise SystemExit(-1)  # submitit's checkpoint_and_try_requeue, after the requeue
            finally:
                raise KeyError("defaults")  # a cleanup that fails on the half-built config
        except KeyError as err:
            raise RuntimeError("Error composing the job's config") from err

    def failing_cell(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            raise KeyError("label")
        except KeyError as err:
            raise ValueError("a broken cell") from err

    for var in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE", "SLURM_JOB_CPUS_PER_NODE"):
        monkeypatch.delenv(var, raising=False)
    launcher = SlurmLauncher(submitit_folder=str(tmp_path / "s"))
    monkeypatch.setattr(stock_launcher, "__call__", composing_when_preempted)
    with pytest.raises(SystemExit) as stop:
        launcher()
    assert stop.value.code == -1
    monkeypatch.setattr(stock_launcher, "__call__", failing_cell)
    with pytest.raises(ValueError, match="a broken cell"):  # no exit in its chain: an ordinary failure stays one
        launcher()
    loop = RuntimeError("a cycle")
    loop.__context__ = KeyError("back")
    loop.__context__.__context__ = loop
    assert masked_exit(loop) is None


# ------------------------------------------------------------------------------------ finished cells
@pytest.fixture
def cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """job_config(overrides, index) composes a tiny_bert cell's config as the launcher does."""
    monkeypatch.setenv("SEVEN_BENCH_DATA", str(tiny_glue(tmp_path / "data")))
    results, sweep = tmp_path / "results", tmp_path / "sweep"

    def job_config(overrides: list[str], index: int) -> Any:
        base = ["model=tiny_bert", f"results_dir={results}", f"hydra.sweep.dir={sweep}"]
        cfg = compose_config([*base, *overrides], return_hydra_config=True)
        with open_dict(cfg.hydra.job):
            cfg.hydra.job.num = index
        return cfg

    return SimpleNamespace(config=job_config, results=results, sweep=sweep)


def finish(results: Path, cell: str) -> None:
    write_record(record_path(results, cell), {"schema_version": SCHEMA_VERSION, "status": "ok", "experiments": []})


def test_plan_leaves_out_complete_cells_tags_them_and_skips_bad_input(cells: Any) -> None:
    overrides = ["task=rte", "pruner=magnitude", "sparsity=0.5", "+experiment=table2"]
    todo = plan_cell(0, overrides, cells.config(overrides, 0))
    assert todo.submit and todo.cell and todo.output_dir == cells.sweep / "0"
    finish(cells.results, todo.cell)
    done = plan_cell(0, overrides, cells.config(overrides, 0))
    assert not done.submit and done.status == {"status": "ok", "cell": todo.cell, "submitted": False}
    assert load_record(record_path(cells.results, todo.cell))["experiments"] == ["table2"]  # as run_cell tags it
    forced = plan_cell(0, [*overrides, "force=true"], cells.config([*overrides, "force=true"], 0))
    assert forced.submit
    bad = plan_cell(1, ["task=rte", "sparsity=1.5"], cells.config(["task=rte", "sparsity=1.5"], 1))
    assert bad.status is not None and bad.status["status"] == "skipped" and "sparsity=1.5" in bad.status["error"]


class FakeJob:
    def __init__(self, folder: Path, job_id: str, value: dict[str, Any] | None):
        self.job_id, self.value = job_id, value
        self.paths = SimpleNamespace(result_pickle=folder / f"{job_id}_result.pkl", stderr=folder / f"{job_id}.err")

    def results(self) -> list[JobReturn]:
        return [JobReturn(status=JobStatus.COMPLETED, _return_value=self.value)]


def test_a_rerun_submits_only_missing_cells_and_reports_a_dead_job(
    cells: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three cells: one complete (not submitted), one that finishes, one whose job is cancelled without
    a result. squeue lists neither job; sacct names the cancellation."""
    from hydra_plugins.seven_bench_slurm.launcher import SlurmLauncher

    sweep = [
        ["task=rte", "pruner=magnitude", "sparsity=0.5"],
        ["task=rte", "pruner=magnitude", "sparsity=0.6"],
        ["task=mrpc", "pruner=magnitude", "sparsity=0.5"],
    ]
    finish(cells.results, plan_cell(0, sweep[0], cells.config(sweep[0], 0)).cell)  # type: ignore[arg-type]
    submitted: list[int] = []

    class FakeExecutor:
        def map_array(self, fn: Any, overrides: Any, keys: Any, indices: Any, *rest: Any) -> list[FakeJob]:
            jobs = []
            for i, index in enumerate(indices):
                submitted.append(index)
                job = FakeJob(tmp_path, f"7_{i}", {"status": "ok"} if index == 1 else None)
                if job.value is not None:  # the job ran: its result file and its status file
                    job.paths.result_pickle.write_bytes(b"")
                    (cells.sweep / str(index)).mkdir(parents=True, exist_ok=True)
                    (cells.sweep / str(index) / "cell_status.json").write_text('{"status": "ok"}')
                jobs.append(job)
            return jobs

    calls: list[str] = []

    def fake_run(command: list[str]) -> subprocess.CompletedProcess[str]:
        calls.append(command[0])
        out = "7_1|CANCELLED by 0\n" if command[0] == "sacct" else ""
        return subprocess.CompletedProcess(command, 0, out, "")

    monkeypatch.setattr(slurm_watch, "run_command", fake_run)
    launcher = SlurmLauncher(
        submitit_folder=str(tmp_path / "s"), timeout_min=60, signal_delay_s=120, poll_s=0, lost_after_s=0
    )
    launcher.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(cells.sweep)}}})
    launcher._job_config = cells.config  # type: ignore[method-assign]
    launcher._executor = FakeExecutor  # type: ignore[method-assign, assignment]
    returns = launcher.launch(sweep, 0)

    assert submitted == [1, 2]
    values = [r.return_value for r in returns]
    assert [r.status for r in returns] == [JobStatus.COMPLETED] * 3  # a dead job does not stop the sweep
    assert values[0]["submitted"] is False and values[1] == {"status": "ok"}
    assert values[2]["status"] == "interrupted" and "7_1 ended (CANCELLED)" in values[2]["error"]
    statuses = [read_job_status(cells.sweep / str(i)) for i in range(3)]
    assert statuses[2] is not None and statuses[2]["job"] == "7_1"
    assert summary_line(statuses) == (  # type: ignore[arg-type]
        "seven-bench: sweep of 3 cell(s): 2 ok, 0 skipped, 0 failed, 1 interrupted; 1 already complete, not submitted"
    )
    assert calls.count("sacct") == 1  # asked once, to name the lost job


# ------------------------------------------------------------------------------------ watching jobs
class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_watch_tells_finished_lost_and_requeued_jobs_apart_without_accounting(tmp_path: Path) -> None:
    """a finishes at t=3; b leaves squeue at t=2 and never writes a result: lost at t=2+10; c leaves
    squeue (a requeue's gap), is listed again, then finishes; squeue fails at t=4..6, which proves
    nothing. No slurmdbd: sacct fails, the state is unknown."""
    clock = Clock()
    jobs = {name: FakeJob(tmp_path, name, None) for name in ("9_0", "9_1", "9_2")}

    def run(command: list[str]) -> subprocess.CompletedProcess[str]:
        t = clock.now
        if t >= 3 and not jobs["9_0"].paths.result_pickle.exists():
            jobs["9_0"].paths.result_pickle.write_bytes(b"")
        if t >= 15 and not jobs["9_2"].paths.result_pickle.exists():
            jobs["9_2"].paths.result_pickle.write_bytes(b"")
        if command[0] == "sacct":
            return subprocess.CompletedProcess(command, 1, "", "Slurm accounting storage is disabled")
        if 4 <= t < 7:
            return subprocess.CompletedProcess(command, 1, "", "Unable to contact slurm controller")
        listed = ["9_0"] + (["9_1"] if t < 2 else []) + (["9_2"] if t < 2 or t >= 7 else [])
        return subprocess.CompletedProcess(command, 0, "\n".join(listed) + "\n", "")

    watch = JobWatch(list(jobs.values()), poll_s=1, lost_after_s=10, run=run, clock=clock, sleep=clock.sleep)
    lost = watch.wait()
    assert list(lost) == ["9_1"] and lost["9_1"].state == UNKNOWN_STATE and lost["9_1"].status == "failed"
    assert 12 <= clock.now <= 17  # waited for c's result, not for ever


def test_squeue_forgetting_every_job_means_none_is_queued() -> None:
    def run(command: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "slurm_load_jobs error: Invalid job id specified")

    assert slurm_watch.queued_jobs(["5_0", "5_1"], run) == set()
    assert slurm_watch.accounting_states(["5_0"], run) == {}
