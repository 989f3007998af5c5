"""Sweeps: each paper-table experiment expands to exactly the paper's cells, the local and SLURM
launchers compose, and a sweep resumes: a rerun redoes only the failed or missing cells, and a sweep
killed mid-way leaves only whole records behind. Also seven-bench-prepare, which readies offline nodes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from seven_bench.conf import CONF_DIR
from seven_bench.tables.load import default_baselines_dir, load_baselines
from tests.conftest import SHARED_DATA

# The paper's columns (ALGORITHMS.md section 5), written out here on purpose: the experiment configs
# must reproduce them, so the test does not read them back from the configs.
CLIP_COLUMNS = {
    "mnist": (0.7, 0.8, 0.9),
    "svhn": (0.7, 0.8, 0.9),
    "gtsrb": (0.5, 0.6, 0.7),
    "cifar10": (0.6, 0.7, 0.8),
    "cifar100": (0.6, 0.7, 0.8),
}
TABLE2_COLUMNS = {"stsb": 0.5, "wnli": 0.9, "qnli": 0.7, "mrpc": 0.5, "rte": 0.6, "sst2": 0.6, "cola": 0.5}
TABLE3_COLUMNS = {"mnli": 0.7, "rte": 0.6, "qnli": 0.7, "mrpc": 0.5, "qqp": 0.9, "sst2": 0.6, "cola": 0.5, "stsb": 0.5}
TABLE4_COLUMNS = (
    ("clip", "cifar10", 0.7),
    ("clip", "cifar100", 0.7),
    ("bert", "qnli", 0.7),
    ("clip", "cifar10", 0.6),
    ("clip", "cifar100", 0.6),
    ("bert", "sst2", 0.6),
)
TABLE5_COLUMNS = {"sst2": 0.6, "mrpc": 0.5, "cola": 0.5, "stsb": 0.5, "rte": 0.6}
TABLE1_METHODS = (
    "random",
    "magnitude",
    "gmp",
    "lth",
    "lth_rewind",
    "earlybird",
    "lottery_pool",
    "snip",
    "grasp",
    "seven_pre",
)
TABLE2_METHODS = (
    "dense",
    "random",
    "magnitude",
    "gmp",
    "earlybird",
    "lth",
    "lottery_pool",
    "isp",
    "snip",
    "grasp",
    "seven_pre",
)
TABLE3_METHODS = ("dense", "movement", "soft_movement", "platon", "seven_dyn")
TABLE4_VARIANTS = (("full", "abs"), ("m_only", "abs"), ("v_only", "abs"), ("none", "abs"), ("full", "signed"))
CURVE_SPARSITIES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
CURVE_METHODS = ("magnitude", "snip", "grasp", "seven_pre")

Cell = tuple[Any, ...]


def _pruner_defaults(name: str) -> dict[str, Any]:
    return dict(OmegaConf.to_container(OmegaConf.load(CONF_DIR / "pruner" / f"{name}.yaml")))  # type: ignore[arg-type]


def cell(model: str, task: str, pruner: str, sparsity: float, optimizer: str | None = None, **options: Any) -> Cell:
    """What tells two cells apart here: model, task, method, sparsity (0 for dense, which ignores it),
    the SEVEN-pre options the ablations vary, and the optimizer."""
    settings = {**_pruner_defaults(pruner), **options}
    return (
        model,
        task,
        pruner,
        0.0 if pruner == "dense" else sparsity,
        settings.get("correction"),
        settings.get("first_moment"),
        settings.get("resurrection"),
        optimizer,
    )


def cell_of(cfg: DictConfig) -> Cell:
    pruner = cfg.pruner
    return (
        cfg.model.name,
        cfg.task.name,
        pruner.name,
        0.0 if pruner.name == "dense" else float(cfg.sparsity),
        pruner.get("correction"),
        pruner.get("first_moment"),
        pruner.get("resurrection"),
        cfg.trainer.optimizer,
    )


EXPECTED: dict[str, Callable[[], set[Cell]]] = {
    "table1": lambda: {cell("clip", t, p, s) for t, ss in CLIP_COLUMNS.items() for s in ss for p in TABLE1_METHODS},
    "table1_dense": lambda: {cell("clip", t, "dense", 0.0) for t in CLIP_COLUMNS},
    "table2": lambda: {cell("bert", t, p, s) for t, s in TABLE2_COLUMNS.items() for p in TABLE2_METHODS},
    "table3": lambda: {cell("bert", t, p, s) for t, s in TABLE3_COLUMNS.items() for p in TABLE3_METHODS},
    "table4": lambda: {
        cell(m, t, "seven_pre", s, correction=c, first_moment=f)
        for m, t, s in TABLE4_COLUMNS
        for c, f in TABLE4_VARIANTS
    },
    "table5": lambda: (
        {cell("bert", t, "seven_pre", s, optimizer="lion") for t, s in TABLE5_COLUMNS.items()}
        | {cell("bert", t, p, s) for t, s in TABLE5_COLUMNS.items() for p in ("lth", "earlybird")}
    ),  # Table II's AdamW cells
    "curve_text": lambda: {
        cell("bert", t, p, s) for t in ("rte", "mrpc") for p in CURVE_METHODS for s in CURVE_SPARSITIES
    },
    "curve_clip": lambda: {
        cell("clip", t, p, s) for t in ("cifar10", "cifar100") for p in CURVE_METHODS for s in CURVE_SPARSITIES
    },
    "resurrection": lambda: {
        cell("bert", "rte", "seven_pre", s, resurrection=r) for r in (False, True) for s in CURVE_SPARSITIES
    },
}
TABLES = ("table1", "table1_dense", "table2", "table3", "table4", "table5")
PLAIN_PRODUCTS = ("curve_text", "curve_clip", "resurrection")  # task x pruner x sparsity, no per-task columns


# Cells per seed, as the header of each experiment config states them.
CELL_COUNTS = {
    "table1": 150,
    "table1_dense": 5,
    "table2": 77,
    "table3": 40,
    "table4": 30,
    "table5": 15,
    "curve_text": 72,
    "curve_clip": 72,
    "resurrection": 18,
}


@pytest.fixture
def hydra_conf() -> Iterator[None]:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        yield


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """The jobs `seven-bench -m <overrides>` launches: the experiment's hydra.sweeper.params plus the
    command line, expanded by Hydra's own BasicSweeper (command-line values win, as in a real sweep)."""
    parser = OverridesParser.create()
    parsed = parser.parse_overrides(overrides)
    primary = compose(
        "config", overrides=[o.input_line for o in parsed if not o.is_sweep_override()], return_hydra_config=True
    )
    params = [f"{key}={value}" for key, value in (primary.hydra.sweeper.params or {}).items()]
    task_overrides = [o.input_line for o in parsed if not o.is_hydra_override()]
    return BasicSweeper.split_arguments(parser.parse_overrides(params + task_overrides), None)[0]


@pytest.mark.parametrize("experiment", TABLES)
def test_table_sweeps_exactly_the_papers_cells(hydra_conf: None, experiment: str) -> None:
    jobs = sweep_jobs([f"+experiment={experiment}", "hydra/launcher=slurm"])
    cfgs = [compose("config", overrides=job) for job in jobs]
    cells = [cell_of(cfg) for cfg in cfgs]
    assert len(jobs) == CELL_COUNTS[experiment]
    assert len(set(cells)) == len(cells), "two jobs of the sweep would run the same cell"
    assert set(cells) == EXPECTED[experiment]()
    assert {cfg.experiment for cfg in cfgs} == {"table1" if experiment == "table1_dense" else experiment}
    assert {cfg.seed for cfg in cfgs} == {0}


@pytest.mark.parametrize("experiment", PLAIN_PRODUCTS)
def test_curve_sweeps_are_full_grids(hydra_conf: None, experiment: str) -> None:
    """Checked on their sparsity axis and on every job at one sparsity: composing all 162 jobs of
    these plain products would double this file's run time and show nothing more."""
    jobs = sweep_jobs([f"+experiment={experiment}", "hydra/launcher=slurm"])
    assert len(jobs) == CELL_COUNTS[experiment]
    axis = {float(o.split("=", 1)[1]) for job in jobs for o in job if o.startswith("sparsity=")}
    assert tuple(sorted(axis)) == CURVE_SPARSITIES
    cfgs = [compose("config", overrides=job) for job in jobs if "sparsity=0.5" in job]
    assert {cell_of(cfg) for cfg in cfgs} == {c for c in EXPECTED[experiment]() if c[3] == 0.5}
    assert {cfg.experiment for cfg in cfgs} == {experiment}


def test_seeds_are_an_axis_and_the_command_line_narrows_a_table(hydra_conf: None) -> None:
    jobs = sweep_jobs(["+experiment=table2", "seed=0,1,2"])
    assert len(jobs) == 3 * CELL_COUNTS["table2"]
    one_column = [
        compose("config", overrides=job)
        for job in sweep_jobs(["+experiment=table2", "+experiment/column=rte_60", "model=tiny_bert"])
    ]
    assert {(c.model.name, c.task.name, c.sparsity) for c in one_column} == {("tiny_bert", "rte", 0.6)}
    assert len(one_column) == len(TABLE2_METHODS)


def test_slurm_launcher_composes_to_a_valid_submitit_job(
    hydra_conf: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # as if srun were here
    monkeypatch.setenv("SEVEN_BENCH_SLURM_PARTITION", "gpu-test")
    monkeypatch.delenv("SEVEN_BENCH_SLURM_ACCOUNT", raising=False)
    cfg = compose("config", overrides=["hydra/launcher=slurm", "model=tiny_bert"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert isinstance(launcher, dict) and launcher["_target_"].endswith("SlurmLauncher")
    assert (
        launcher["gpus_per_node"],
        launcher["tasks_per_node"],
        launcher["cpus_per_task"],
        launcher["mem_gb"],
        launcher["timeout_min"],
        launcher["partition"],
        launcher["account"],
    ) == (1, 1, 8, 32, 720, "gpu-test", None)

    # The parameters as SlurmLauncher.launch hands them to submitit, which rejects unknown names.
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    params = {
        k if k in base else f"slurm_{k}": v
        for k, v in launcher.items()
        if k not in ("_target_", "submitit_folder", "max_num_timeout", "poll_s", "lost_after_s")
    }
    executor = submitit.AutoExecutor(folder=tmp_path, cluster="slurm")
    executor.update_parameters(**params)
    script = executor._executor._make_submission_file_text("python -m job", "uid")
    for line in (
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --partition=gpu-test",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=32GB",
        "#SBATCH --time=720",
        'cd "$SLURM_SUBMIT_DIR" || exit 1',
    ):
        assert line in script


def test_local_launcher_is_joblib_with_two_workers(hydra_conf: None) -> None:
    cfg = compose("config", overrides=["hydra/launcher=local"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2
    cfg = compose("config", overrides=["hydra/launcher=local", "hydra.launcher.n_jobs=4"], return_hydra_config=True)
    assert cfg.hydra.launcher.n_jobs == 4


# ------------------------------------------------------------------------------------ real sweeps
needs_rte = pytest.mark.skipif(not (SHARED_DATA / "glue" / "RTE").is_dir(), reason=f"no RTE files under {SHARED_DATA}")
SMOKE = [
    "model=tiny_bert",
    "task=rte",
    "pruner=magnitude,snip",
    "sparsity=0.5,0.6",
    "trainer.max_steps=3",
    "trainer.epochs=1",
    "task.max_train_examples=64",
    "task.max_eval_examples=32",
    "progress=false",
]


def sweep_command(results: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "seven_bench.cli",
        "-m",
        *SMOKE,
        f"results_dir={results}",
        f"hydra.sweep.dir={results / 'multirun'}",
    ]


def records(results: Path) -> dict[str, bytes]:
    """cell hash -> the bytes of its record.json; each must parse as a whole record."""
    found = {p.parent.name: p.read_bytes() for p in (results / "runs").glob("*/record.json")}
    for data in found.values():
        assert json.loads(data)["cell_hash"]
    return found


def _statuses(found: dict[str, bytes]) -> set[str]:
    return {json.loads(data)["status"] for data in found.values()}


@needs_rte
def test_sweep_resumes_after_a_kill_and_reruns_only_failed_or_missing_cells(tmp_path: Path) -> None:
    """One 4-cell sweep, three runs (a real sweep costs seconds, so the phases share it): killed with
    SIGKILL after its first record; rerun to the end; rerun after one record is marked failed and
    another deleted. Each rerun must run exactly the cells without a complete record."""
    results = tmp_path / "results"
    command = sweep_command(results)

    proc = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 240
    try:
        while not records(results) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed = records(results)  # every record.json that survived the kill parses
    assert 1 <= len(killed) < 4, f"the kill should land mid-sweep; {len(killed)} of 4 records were written"

    subprocess.run(command, cwd=tmp_path, check=True, capture_output=True, timeout=300)
    done = records(results)
    assert len(done) == 4 and _statuses(done) == {"ok"}
    assert {h: done[h] for h in killed} == killed  # finished cells were not run again

    failed, deleted, *kept = sorted(done)
    record = json.loads(done[failed])
    record.update(status="failed", error="RuntimeError: injected by the test")
    (results / "runs" / failed / "record.json").write_text(json.dumps(record))
    (results / "runs" / deleted / "record.json").unlink()
    subprocess.run(command, cwd=tmp_path, check=True, capture_output=True, timeout=300)
    final = records(results)
    assert sorted(final) == sorted(done) and _statuses(final) == {"ok"}
    assert {h for h in final if final[h] != done[h]} == {failed, deleted}
    for h in kept:
        assert json.loads(final[h])["created_at"] == json.loads(done[h])["created_at"]


# --------------------------------------------------------------- seven-bench-prepare (offline nodes)
# Hub-like examples per task: text columns as nyu-mll/glue names them, tricky on purpose (a leading
# double quote, which GLUE files leave unquoted; a tab and a line break, which a TSV cannot hold; non-ASCII).
def _fake_hub_split(task: str, n: int) -> list[dict[str, Any]]:
    from seven_bench.tasks.glue import SPECS

    spec = SPECS[task]
    hub_a, hub_b = spec.hub_columns
    rows = []
    for i in range(n):
        row: dict[str, Any] = {hub_a: f'"Quoted" start {i}, café', "idx": i}
        if hub_b is not None:
            row[hub_b] = f"second\tpart\nof {i}"
        row["label"] = [0.0, 3.799999952316284, 5.0][i % 3] if spec.num_labels == 1 else i % spec.num_labels
        rows.append(row)
    return rows


@pytest.mark.parametrize("task", ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"])
def test_prepare_writes_glue_tsvs_that_the_reader_reads_back(tmp_path: Path, task: str) -> None:
    from seven_bench.prepare import GLUE_COLUMNS, write_glue_split
    from seven_bench.tasks.glue import SPECS, read_glue

    spec = SPECS[task]
    files = dict(zip(spec.splits(), spec.files()))
    written = {split: _fake_hub_split(task, 5 + k) for k, split in enumerate(spec.splits())}
    for split, rows in written.items():
        assert write_glue_split(task, rows, tmp_path / "glue" / spec.directory / files[split]) == len(rows)
    for split, rows in written.items():
        back = read_glue(task, split, tmp_path)
        hub_a, hub_b = spec.hub_columns
        assert [e["text_a"] for e in back] == [r[hub_a] for r in rows]
        assert [e["text_b"] for e in back] == [
            r[hub_b].replace("\t", " ").replace("\n", " ") if hub_b else None for r in rows
        ]
        assert [e["label"] for e in back] == [r["label"] for r in rows]

    first_line = (tmp_path / "glue" / spec.directory / "train.tsv").read_bytes().split(b"\n", 1)[0]
    header = "\t".join(GLUE_COLUMNS[task]).encode()
    if task == "cola":  # no header row, as GLUE's CoLA
        assert first_line.count(b"\t") == 3 and not first_line.startswith(header)
    else:  # MRPC's official files start with a BOM
        assert first_line == (b"\xef\xbb\xbf" if task == "mrpc" else b"") + header


def test_prepare_dry_run_and_offline_failures_say_one_line_per_item(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from seven_bench.prepare import main, write_glue_split

    write_glue_split("rte", _fake_hub_split("rte", 3), tmp_path / "glue" / "RTE" / "train.tsv")
    write_glue_split("rte", _fake_hub_split("rte", 3), tmp_path / "glue" / "RTE" / "dev.tsv")
    args = ["--models", "tiny_clip", "--tasks", "rte,qnli,imagenet", "--data-root", str(tmp_path)]

    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in out] == [
        ["present", "model", "tiny_clip"],
        ["present", "task", "rte"],
        ["fetch", "task", "qnli"],
        ["missing", "task", "imagenet"],
    ]

    assert main(args) == 1  # HF_HUB_OFFLINE=1 (conftest): the hub items fail at once, with the reason
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2 and "task qnli" in errors[0] and "HF_HUB_OFFLINE" in errors[0]
    assert "task imagenet" in errors[1] and str(tmp_path / "imagenet") in errors[1]
    assert not (tmp_path / "glue" / "QNLI").exists()
    assert main(["--tasks", "nosuchtask", "--data-root", str(tmp_path)]) == 2


PROXY_CELLS_PER_SEED = {"proxy_table2": 56, "proxy_scan": 60, "proxy_table3": 5, "proxy_curve": 28}


@pytest.mark.parametrize("experiment", sorted(PROXY_CELLS_PER_SEED))
def test_proxy_sweeps_compose_on_the_stand_in(hydra_conf: None, experiment: str) -> None:
    jobs = sweep_jobs([f"+experiment={experiment}"])
    assert len(jobs) == PROXY_CELLS_PER_SEED[experiment]
    cfgs = [compose("config", overrides=job) for job in jobs]
    assert {(c.model.name, c.results_dir, c.experiment) for c in cfgs} == {("minilm", "results/proxy", experiment)}
    assert {c.task.name for c in cfgs} <= {"stsb", "mrpc"}


def test_proxy_table3_own_recipe_sweep_runs_each_method_on_its_papers_recipe(hydra_conf: None) -> None:
    """The Makefile's own-recipe Table III sweep: the baselines get their own papers' trainers (PLATON's Adamax
    at batch 8, movement's 3e-5 with warm-up), and SEVEN-dyn, whose own recipe is the same-budget one, is the very
    cell of the same-budget sweep (same hash), so it is never run twice."""
    from seven_bench.spec import build_spec

    def specs(overrides: list[str]) -> dict[str, Any]:
        found = {}
        for job in sweep_jobs(overrides):
            spec = build_spec(compose("config", overrides=job))
            found[spec.pruner["name"]] = spec
        return found

    own = specs(["+experiment=proxy_table3", "trainer.recipe=own", "pruner=seven_dyn,platon,movement,soft_movement"])
    same = specs(["+experiment=proxy_table3"])
    assert {name: spec.trainer["recipe"] for name, spec in own.items()} == {
        "seven_dyn": "seven_dyn",
        "platon": "platon",
        "movement": "movement",
        "soft_movement": "soft_movement",
    }
    assert (own["platon"].trainer["optimizer"], own["platon"].trainer["batch_size"]) == ("adamax", 8)
    assert (own["movement"].trainer["lr"], own["movement"].trainer["warmup_steps"]) == (3e-5, 300)
    assert own["seven_dyn"].cell_hash == same["seven_dyn"].cell_hash
    assert own["platon"].cell_hash != same["platon"].cell_hash


def test_proxy_table2_sweeps_every_method_the_paper_prints_for_its_columns(hydra_conf: None) -> None:
    baselines = load_baselines(default_baselines_dir())
    table2 = baselines[(baselines.table == "table2") & baselines.task.isin(["stsb", "mrpc"])]
    paper = set(table2.method)
    jobs = sweep_jobs(["+experiment=proxy_table2"])
    swept = {o.split("=", 1)[1] for job in jobs for o in job if o.startswith("pruner=")}
    assert paper <= swept, f"the proxy's Table II misses {sorted(paper - swept)}"
