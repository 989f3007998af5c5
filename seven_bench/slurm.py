"""SLURM sweeps (`hydra/launcher=slurm` or `slurm_cpu`): what the submitting process decides before it
submits anything, and what every job does first. The launcher itself (hydra_plugins/seven_bench_slurm)
only wires these into Hydra and submitit.

- A time limit the launcher's checkpoint signal cannot fit in is refused with one line.
- Cells whose record is complete are not submitted at all (unless `force=true`): a rerun of a table
  submits only what is missing, and says how many it left out.
- Each job runs as many torch/OpenMP threads as CPUs SLURM granted it, not one per core of the node.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, MutableMapping, Sequence

from seven_bench.errors import UserError

log = logging.getLogger("seven_bench")

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# SLURM sends a job's --signal up to this many seconds before the time it was asked for (its event
# resolution, `man sbatch`: --signal).
SIGNAL_SLACK_S = 60


def granted_cpus(environ: Mapping[str, str]) -> int | None:
    """The CPUs SLURM gave this task: SLURM_CPUS_PER_TASK when the job asked for --cpus-per-task, else
    every CPU the job holds on this node (SLURM_CPUS_ON_NODE; the launcher runs one task per node).
    None outside a SLURM job.

        granted_cpus({"SLURM_CPUS_PER_TASK": "4", "SLURM_CPUS_ON_NODE": "64"})  # -> 4
    """
    for key in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        value = str(environ.get(key, "")).strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def pin_threads(environ: MutableMapping[str, str] | None = None) -> int | None:
    """Inside a SLURM job: OpenMP/MKL/OpenBLAS and torch use the granted CPUs. Without it torch starts one
    thread per core of the node, and four 1-CPU jobs on a 64-core node fight over one core each with 64
    threads (the issue measured 143 s against 30 s for a 4-cell sweep). The variables are set first, for
    libraries not yet loaded, then torch is told directly, as it may already run. The grant wins over
    an OMP_NUM_THREADS inherited from the submitting shell: that number was meant for another machine.
    Returns the thread count, or None (nothing changed) outside SLURM."""
    env = os.environ if environ is None else environ
    threads = granted_cpus(env)
    if threads is None:
        return None
    for var in THREAD_VARS:
        env[var] = str(threads)
    import torch

    torch.set_num_threads(threads)
    return threads


def check_time_limit(timeout_min: Any, signal_delay_s: Any) -> None:
    """Refuse a time limit the checkpoint signal cannot fit in: submitit asks SLURM to signal a job
    `signal_delay_s` before its limit (SLURM may do so up to a minute earlier still). With timeout_min=1
    and the default 120 s every job is "timed out" as it starts.

        check_time_limit(1, 120)   # UserError: ... more than 3 min ...
    """
    if timeout_min is None:
        return
    needed = int(signal_delay_s or 0) + SIGNAL_SLACK_S
    if float(timeout_min) * 60 <= needed:
        raise UserError(
            f"hydra.launcher.timeout_min={timeout_min} is too short: each job is signalled to checkpoint "
            f"hydra.launcher.signal_delay_s={signal_delay_s} s before its time limit (SLURM may signal up to "
            f"{SIGNAL_SLACK_S} s earlier), so it would stop as it starts; ask for more than "
            f"{math.ceil(needed / 60)} min, or lower signal_delay_s"
        )


@dataclass
class PlannedCell:
    """One job of the sweep, decided before submission. `status` is set when the cell is not submitted:
    its record is complete (ok) or its config cannot run (skipped)."""

    index: int
    overrides: list[str]
    output_dir: Path
    cell: str | None = None
    status: dict[str, Any] | None = None

    @property
    def submit(self) -> bool:
        return self.status is None


def complete_record(results_dir: str | Path, cell_hash: str, experiment: str | None) -> dict[str, Any] | None:
    """The cell's complete record, tagged with `experiment` as run_cell tags a record it finds complete
    (several tables share a cell), or None when the cell has to run."""
    from seven_bench.records import is_complete, load_record, record_path, write_record

    path = record_path(results_dir, cell_hash)
    if not is_complete(path):
        return None
    record = load_record(path) or {}
    if experiment and experiment not in record.get("experiments", []):
        record["experiments"] = [*record.get("experiments", []), experiment]
        write_record(path, record)
    return record


def plan_cell(index: int, overrides: Sequence[str], job_config: Any) -> PlannedCell:
    """Decide one job from its composed config (hydra node included, hydra.job.num already set):
    where it writes, which cell it is, and whether it needs a job at all. A config that raises anything
    but a UserError is submitted unchanged: the job reports it as it always did."""
    from omegaconf import OmegaConf, open_dict

    from seven_bench.spec import build_spec

    output_dir = Path(str(job_config.hydra.sweep.dir)) / str(OmegaConf.select(job_config, "hydra.sweep.subdir"))
    planned = PlannedCell(index, list(overrides), output_dir)
    task_config = copy.deepcopy(job_config)
    with open_dict(task_config):
        del task_config["hydra"]
    try:
        spec = build_spec(task_config)
    except UserError as err:
        planned.status = {"status": "skipped", "error": str(err), "submitted": False}
        return planned
    except Exception as err:  # noqa: BLE001 - not ours to judge here: the job runs it and reports it
        log.debug("cell #%d not planned (%s): submitted as it is", index, err)
        return planned
    planned.cell = spec.cell_hash
    if bool(task_config.get("force", False)):
        return planned
    if complete_record(task_config.results_dir, spec.cell_hash, task_config.get("experiment")) is not None:
        planned.status = {"status": "ok", "cell": spec.cell_hash, "submitted": False}
    return planned


def plan_sweep(
    job_overrides: Sequence[Sequence[str]], first_index: int, compose: Callable[[list[str], int], Any]
) -> list[PlannedCell]:
    """plan_cell for every job; `compose(overrides, index)` returns the job's config as the job will see it."""
    return [
        plan_cell(first_index + i, list(overrides), compose(list(overrides), first_index + i))
        for i, overrides in enumerate(job_overrides)
    ]
