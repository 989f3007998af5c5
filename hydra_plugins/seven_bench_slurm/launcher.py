"""hydra-submitit-launcher's SLURM launcher with what a cluster sweep of this suite needs (its yaml:
conf/hydra/launcher/slurm.yaml and slurm_cpu.yaml):

- before submission: a time limit the checkpoint signal cannot fit in is refused in one line, and
  cells whose record is complete are not submitted (seven_bench/slurm.py);
- in each job, first: threads from the CPUs SLURM granted;
- while waiting: a job that dies or is cancelled is noticed with or without SLURM accounting
  (seven_bench/slurm_watch.py), reported with its cell, and counted in the sweep's summary, which then
  exits non-zero, after the other jobs have finished. The stock launcher waits on `sacct` forever
  without accounting, and stops the whole sweep at the first job that raised.

Preemption and time-outs keep submitit's checkpoint/requeue (`checkpoint` below is the stock one): the
requeued job runs the same cell again, and the cell resumes its fine-tune from its last checkpoint.
This module is imported by Hydra's plugin scan on every start: it imports nothing heavy, and it has no
`from __future__ import annotations` (the scan runs it before it is in sys.modules, where dataclasses
then look for string annotations).
"""

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


@dataclass
class SevenBenchSlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.seven_bench_slurm.launcher.SlurmLauncher"
    poll_s: float = 5.0  # seconds between two squeue calls while the sweep waits
    lost_after_s: float = 30.0  # a job squeue stopped listing, still without a result this long after: lost


ConfigStore.instance().store(
    group="hydra/launcher", name="seven_bench_slurm", node=SevenBenchSlurmConf, provider="seven_bench"
)


def _returned(planned: Any, status: dict[str, Any]) -> JobReturn:
    """What Hydra's sweeper gets for a cell whose status this process settled: always COMPLETED, so that
    one bad cell does not stop the sweep; the status file carries the outcome to the summary."""
    from seven_bench.sweep import write_job_status

    write_job_status(planned.output_dir, status)
    return JobReturn(overrides=planned.overrides, status=JobStatus.COMPLETED, _return_value=status)


def masked_exit(err: BaseException) -> SystemExit | None:
    """The SystemExit behind an exception, if cleanup code replaced one on its way out.

    On preemption submitit's signal handler requeues the job and exits with SystemExit from wherever the job
    is. Landing inside a `finally` that fails in turn (OmegaConf's flag_override while Hydra composes the
    job's config), the exit becomes an ordinary exception: submitit then writes an error result, and the sweep
    reports a failed cell although SLURM has requeued it. Re-raising the exit lets the requeued job run.
    """
    seen: set[int] = set()
    stack: list[BaseException] = [err]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, SystemExit):
            return current
        stack += [link for link in (current.__cause__, current.__context__) if link is not None]
    return None


class SlurmLauncher(SubmititSlurmLauncher):
    def __init__(self, poll_s: float = 5.0, lost_after_s: float = 30.0, **params: Any) -> None:
        super().__init__(**params)
        self.poll_s, self.lost_after_s = float(poll_s), float(lost_after_s)

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """Runs inside the SLURM job (and again in a requeued one): threads first, then the stock job."""
        from seven_bench.slurm import pin_threads

        threads = pin_threads()
        if threads is not None:
            print(f"seven-bench: {threads} thread(s): the CPUs SLURM granted this job", flush=True)
        try:
            return super().__call__(*args, **kwargs)
        except Exception as err:
            requeue_exit = masked_exit(err)
            if requeue_exit is None:
                raise
            raise requeue_exit from None

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from seven_bench.errors import UserError
        from seven_bench.slurm import check_time_limit, plan_sweep

        try:
            check_time_limit(self.params.get("timeout_min"), self.params.get("signal_delay_s"))
        except UserError as err:
            print(f"seven-bench: error: {err}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        assert self.config is not None
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info("seven-bench SLURM sweep: output dir %s", self.config.hydra.sweep.dir)
        plans = plan_sweep(job_overrides, initial_job_idx, self._job_config)
        returns: dict[int, JobReturn] = {}
        for planned in plans:
            shown = " ".join(filter_overrides(planned.overrides))
            if planned.status is None:
                log.info("\t#%d : %s", planned.index, shown)
            elif planned.status["status"] == "ok":
                log.info("\t#%d : %s (cell %s complete: not submitted)", planned.index, shown, planned.cell)
                returns[planned.index] = _returned(planned, planned.status)
            else:
                log.error("\t#%d : %s (skipped: %s)", planned.index, shown, planned.status.get("error"))
                returns[planned.index] = _returned(planned, planned.status)
        todo = [p for p in plans if p.status is None]
        if todo:
            returns.update(self._submit_and_wait(todo))
        else:
            log.info("seven-bench SLURM sweep: nothing to submit")
        return [returns[p.index] for p in plans]

    def _job_config(self, overrides: list[str], index: int) -> DictConfig:
        """The job's config as the job will compose it (see BaseSubmititLauncher.__call__)."""
        assert self.hydra_context is not None and self.config is not None
        config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(config.hydra.job):
            config.hydra.job.num = index
        return config

    def _executor(self) -> Any:
        """The submitit executor, built as the stock launcher builds it, without this launcher's own keys."""
        import submitit

        params = dict(self.params)
        init = {"folder": params.pop("submitit_folder")}
        if "max_num_timeout" in params:
            init["slurm_max_num_timeout"] = params.pop("max_num_timeout")
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in params.items()})
        return executor

    def _submit_and_wait(self, todo: list[Any]) -> dict[int, JobReturn]:
        from seven_bench.slurm_watch import JobWatch

        executor = self._executor()
        job_params = [
            (list(p.overrides), "hydra.sweep.dir", p.index, f"job_id_for_{p.index}", Singleton.get_state())
            for p in todo
        ]
        jobs = executor.map_array(self, *zip(*job_params))
        log.info("seven-bench SLURM sweep: %d cell(s) submitted: job(s) %s", len(jobs), _id_range(jobs))
        lost = JobWatch(jobs, self.poll_s, self.lost_after_s).wait()
        return {p.index: self._outcome(p, job, lost.get(job.job_id)) for p, job in zip(todo, jobs)}

    def _outcome(self, planned: Any, job: Any, lost: Any) -> JobReturn:
        from seven_bench.sweep import read_job_status

        where = f"#{planned.index} cell {planned.cell or '?'} (SLURM job {job.job_id})"
        if lost is not None:
            status = read_job_status(planned.output_dir) or {"status": lost.status, "cell": planned.cell}
            if status.get("status") != "ok":  # the job may have recorded an interruption; say how it ended
                status["error"] = (
                    f"SLURM job {job.job_id} ended ({lost.state}) without a result; log: {job.paths.stderr}"
                )
                log.error("%s: %s: %s", where, status["status"], status["error"])
            return _returned(planned, {**status, "job": job.job_id})
        try:
            ret = job.results()[0]
        except Exception as err:  # noqa: BLE001 - the job raised outside the cell (e.g. it could not start)
            error = f"{type(err).__name__}: {err}".splitlines()[0]
            log.error("%s: failed: %s; log: %s", where, error, job.paths.stderr)
            return _returned(planned, {"status": "failed", "cell": planned.cell, "error": error, "job": job.job_id})
        if ret.status != JobStatus.COMPLETED:  # an exception escaped the cell: the stock sweeper would stop here
            error = f"{type(ret._return_value).__name__}: {ret._return_value}".splitlines()[0]
            log.error("%s: failed: %s", where, error)
            return _returned(planned, {"status": "failed", "cell": planned.cell, "error": error, "job": job.job_id})
        value = ret.return_value if isinstance(ret.return_value, dict) else {"status": "ok"}
        if value.get("status") == "ok":
            log.info("%s: ok", where)
        else:
            log.error("%s: %s: %s", where, value.get("status"), value.get("error"))
        return ret


def _id_range(jobs: Sequence[Any]) -> str:
    ids = [job.job_id for job in jobs]
    return ids[0] if len(ids) == 1 else f"{ids[0]} .. {ids[-1]}"
