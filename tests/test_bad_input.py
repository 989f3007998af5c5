"""Bad input (issue 9): every impossible setting stops in seconds, before any model loads, with one line
(`seven-bench: error: ...`, exit 2) and nothing written to results_dir; and what is not an input error
but used to pass silently or crash (damaged data, a corrupt record, a signal, a sweep whose cells failed,
a killed parallel sweep) now ends in a record or an exit status that says so."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

import seven_bench.models  # noqa: F401  (imported here so that the timed CLI calls measure the CLI)
import seven_bench.run
import seven_bench.train  # noqa: F401
from seven_bench import cli
from seven_bench.cli import force_group_options
from seven_bench.conf import compose_config
from seven_bench.interrupts import MAIN_PID_ENV
from seven_bench.records import is_complete, record_path
from seven_bench.spec import build_spec
from tests.conftest import SHARED_DATA, requires_shared_data

pytestmark = requires_shared_data()
BIN = Path(sys.executable).parent / "seven-bench"
TINY = ["model=tiny_bert", "task=rte", "task.max_train_examples=32", "task.max_eval_examples=16", "progress=false"]


def _compose(*overrides: str):
    return compose_config(overrides)


def _rte_copy(root: Path) -> Path:
    """A data root holding a copy of the shared RTE files, to damage."""
    folder = root / "glue" / "RTE"
    folder.mkdir(parents=True)
    for name in ("train.tsv", "dev.tsv"):
        shutil.copyfile(SHARED_DATA / "glue" / "RTE" / name, folder / name)
    return folder


def _empty(folder: Path) -> None:
    (folder / "train.tsv").write_bytes(b"")


def _header_only(folder: Path) -> None:
    (folder / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n")


def _garbage(folder: Path) -> None:
    (folder / "train.tsv").write_bytes(bytes(range(256)) * 40)


# (overrides, a substring the one line must hold, a change to a copy of the data or None)
BAD: dict[str, tuple[list[str], str, Callable[[Path], None] | None]] = {
    "max_length": (["task.max_length=0"], "task.max_length=0", None),
    "seed_not_integer": (["seed=1.5"], "seed=1.5", None),
    "no_epochs": (["trainer.epochs=0"], "trainer.epochs=0", None),
    "unknown_key": (["+trainer.lr_typo=1"], "trainer.lr_typo", None),
    "unknown_top_key": (["+sparsty=0.5"], "sparsty", None),
    "first_moment": (["pruner=seven_pre", "pruner.first_moment=foo"], "pruner.first_moment", None),
    "correction": (["pruner=seven_pre", "pruner.correction=foo"], "pruner.correction", None),
    "optimizer": (["trainer.optimizer=foo"], "trainer.optimizer=foo", None),
    "lr_schedule": (["trainer.lr_schedule=foo"], "trainer.lr_schedule=foo", None),
    "batch_size": (["trainer.batch_size=0"], "trainer.batch_size=0", None),
    "lr_nan": (["trainer.lr=nan"], "trainer.lr=nan", None),
    "lr_negative": (["trainer.lr=-0.001"], "trainer.lr=-0.001", None),
    # one past the last GPU: no GPU at all on a CPU machine, and out of range on a GPU one
    "device_index": ([f"trainer.device=cuda:{torch.cuda.device_count()}"], "trainer.device=cuda", None),
    "device_name": (["trainer.device=gpu0"], "trainer.device=gpu0", None),
    "results_under_a_file": (["results_dir={tmp}/a_file/results"], "results_dir=", None),
    "empty_split": ([], "train.tsv: empty file", _empty),
    "header_only_split": ([], "train.tsv: has a header but no rows", _header_only),
    "garbage_split": ([], "train.tsv: not utf-8 text", _garbage),
}
if not torch.backends.mps.is_available():
    BAD["device_mps"] = (["trainer.device=mps"], "trainer.device=mps", None)


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_before_anything_loads(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides, needle, damage = BAD[case]
    (tmp_path / "a_file").write_text("not a folder")
    results = tmp_path / "results"
    if damage is not None:
        damage(_rte_copy(tmp_path / "data"))
        monkeypatch.setenv("SEVEN_BENCH_DATA", str(tmp_path / "data"))

    def no_cell(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cell started: the bad input was not caught before the model loads")

    monkeypatch.setattr(seven_bench.run, "run_cell", no_cell)
    monkeypatch.delenv(MAIN_PID_ENV, raising=False)  # cli.main sets it; restored after the test
    monkeypatch.chdir(tmp_path)  # Hydra's own outputs/ folder
    args = [
        *TINY,
        "pruner=magnitude",
        "sparsity=0.5",
        "trainer.max_steps=1",
        f"results_dir={results}",
        *(o.format(tmp=tmp_path) for o in overrides),
    ]
    monkeypatch.setattr(sys, "argv", ["seven-bench", *args])
    GlobalHydra.instance().clear()
    started = time.perf_counter()
    with pytest.raises(SystemExit) as stop:
        cli.main()
    elapsed = time.perf_counter() - started
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("seven-bench: error: "), err
    assert needle in err
    assert elapsed < 5.0
    assert not results.exists()
    assert (tmp_path / "a_file").is_file()


def test_read_only_results_dir_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from seven_bench.errors import UserError

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    if os.geteuid() == 0:  # root writes into read-only folders: ask os.access the question a user's run would
        real = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == locked else real(path, mode))
    with pytest.raises(UserError, match="results_dir=.* is not writable"):
        build_spec(_compose(*TINY, f"results_dir={locked / 'results'}"))
    assert not (locked / "results").exists()


def test_device_check_asks_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a one-GPU machine: cuda and cuda:0 pass, cuda:1 names the count (no GPU is needed to test it)."""
    from seven_bench.errors import UserError
    from seven_bench.validate import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for name in ("auto", "cpu", "cuda", "cuda:0"):
        check_device(name)
    with pytest.raises(UserError, match=r"trainer.device=cuda:1: this machine has 1 cuda device"):
        check_device("cuda:1")


def test_readme_prepare_dry_run_lists_every_item(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from seven_bench.prepare import main

    assert (
        main(["--models", "bert,clip", "--tasks", "rte,mrpc,cifar10", "--data-root", str(tmp_path), "--dry-run"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1:3] for line in lines] == [
        ["model", "bert"],
        ["model", "clip"],
        ["task", "rte"],
        ["task", "mrpc"],
        ["task", "cifar10"],
    ]
    assert not any(tmp_path.iterdir())  # a dry run writes nothing


def test_sweep_option_reaches_only_the_pruners_that_have_it() -> None:
    argv = force_group_options(["-m", "pruner=magnitude,seven_pre", "pruner.first_moment=signed", *TINY])
    assert argv[-1].startswith("+swept_options=[pruner.first_moment,")
    job = [a for a in argv if a not in ("-m", "pruner=magnitude,seven_pre")]
    alone = build_spec(_compose(*TINY, "pruner=magnitude", "sparsity=0.5"))
    swept = build_spec(_compose(*job, "pruner=magnitude", "sparsity=0.5"))
    assert "first_moment" not in swept.pruner and swept.cell_hash == alone.cell_hash
    seven = build_spec(_compose(*job, "pruner=seven_pre", "sparsity=0.5"))
    assert seven.pruner["first_moment"] == "signed"


def test_damaged_glue_files_make_other_cells_and_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A truncated or malformed TSV still runs (the readers drop bad rows, as GLUE's do), but under its own
    cell hash, with the files' fingerprint and the dropped rows in the record."""
    folder = _rte_copy(tmp_path / "data")
    monkeypatch.setenv("SEVEN_BENCH_DATA", str(tmp_path / "data"))
    clean = build_spec(_compose(*TINY, "pruner=magnitude", "sparsity=0.5", "trainer.max_steps=1"))
    assert {f["path"] for f in clean.task["data_fingerprint"]} == {"glue/RTE/train.tsv", "glue/RTE/dev.tsv"}

    train = (folder / "train.tsv").read_bytes()
    (folder / "train.tsv").write_bytes(train[: len(train) // 2])  # cut inside a row
    truncated = build_spec(_compose(*TINY, "pruner=magnitude", "sparsity=0.5", "trainer.max_steps=1"))
    assert truncated.cell_hash != clean.cell_hash

    lines = train.decode().splitlines(keepends=True)
    lines.insert(5, "9999\tonly one sentence\n")  # a row with a missing field
    (folder / "train.tsv").write_text("".join(lines))
    malformed = build_spec(_compose(*TINY, "pruner=magnitude", "sparsity=0.5", "trainer.max_steps=1"))
    assert len({clean.cell_hash, truncated.cell_hash, malformed.cell_hash}) == 3
    record = seven_bench.run.run_cell(malformed, tmp_path / "results", progress=False)
    assert record["status"] == "ok"
    assert any("dropped 1 malformed row" in w for w in record["warnings"])
    files = {f["path"]: f for f in record["data_info"]["files"]}
    assert files["glue/RTE/train.tsv"]["size"] == (folder / "train.tsv").stat().st_size

    # Hub data has no local files to fingerprint: such cells keep the hash they had before fingerprints.
    from seven_bench.tasks import glue

    monkeypatch.setenv("SEVEN_BENCH_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(glue, "hub_reachable", lambda: True)
    assert "data_fingerprint" not in build_spec(_compose(*TINY, "pruner=magnitude", "sparsity=0.5")).task


@pytest.mark.parametrize("content", ["[]", "3", '"ok"'])
def test_a_record_that_is_no_object_is_set_aside_and_the_cell_reruns(content: str, tmp_path: Path) -> None:
    spec = build_spec(_compose(*TINY, "pruner=magnitude", "sparsity=0.5", "trainer.max_steps=1"))
    path = record_path(tmp_path, spec.cell_hash)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    assert not is_complete(path)
    if content != "[]":  # one real rerun is enough; the others only check the reading
        return
    record = seven_bench.run.run_cell(spec, tmp_path, progress=False)
    assert record["status"] == "ok" and is_complete(path)
    aside = list(path.parent.glob("record.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == "[]"


def _seven_bench(*args: str, cwd: Path, **kwargs: object) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SEVEN_BENCH_DATA": str(SHARED_DATA), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([str(BIN), *args], cwd=cwd, env=env, **kwargs)  # type: ignore[call-overload]


def test_sigterm_mid_training_leaves_an_interrupted_record(tmp_path: Path) -> None:
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as err:
        proc = _seven_bench(
            "model=tiny_bert",
            "task=rte",
            "task.max_train_examples=32",
            "task.max_eval_examples=8",
            "pruner=magnitude",
            "sparsity=0.5",
            "trainer.epochs=10000",
            "trainer.max_steps=1000000",
            "trainer.batch_size=4",
            f"results_dir={tmp_path / 'results'}",
            "progress=true",
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        deadline = time.monotonic() + 120
        while not re.search(rb"fine-tune:.*\| [1-9]", log.read_bytes()) and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-2000:]
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    (path,) = (tmp_path / "results" / "runs").glob("*/record.json")
    record = json.loads(path.read_text())
    assert record["status"] == "interrupted" and "signal 15" in record["error"]
    assert isinstance(record["failed_at_step"], int) and record["failed_at_step"] >= 0
    assert not is_complete(path)  # the next run of the command reruns it


def test_sweep_with_a_bad_cell_exits_non_zero_with_a_summary(tmp_path: Path) -> None:
    proc = _seven_bench(
        "-m",
        *TINY,
        "pruner=magnitude",
        "sparsity=0.5",
        "trainer.max_steps=1",
        "trainer.batch_size=8,0",
        f"results_dir={tmp_path / 'results'}",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err.decode()[-2000:]
    assert "seven-bench: sweep of 2 cell(s): 1 ok, 1 skipped, 0 failed, 0 interrupted" in out.decode()


def _children(pid: int) -> set[int]:
    """Direct children of `pid`, from /proc (no psutil needed)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_killing_a_parallel_sweep_stops_its_workers(tmp_path: Path) -> None:
    proc = _seven_bench(
        "-m",
        "hydra/launcher=local",
        "hydra.launcher.n_jobs=2",
        *TINY,
        "pruner=magnitude,random",
        "sparsity=0.5",
        "trainer.epochs=10000",
        "trainer.max_steps=1000000",
        "trainer.batch_size=4",
        f"results_dir={tmp_path / 'results'}",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 180
        # each job's output folder (multirun/<num>/) appears when the job starts (no .hydra/ copies: output_subdir null)
        while (
            len([p for p in (tmp_path / "multirun").glob("[0-9]*") if p.is_dir()]) < 2 and time.monotonic() < deadline
        ):
            assert proc.poll() is None
            time.sleep(0.2)
        time.sleep(2)  # into the cells
        workers = _children(proc.pid)
        assert workers
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 15
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [w for w in workers if _alive(w)], "workers outlived the sweep's main process"
    finally:
        for pid in workers | {proc.pid}:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    for path in (tmp_path / "results" / "runs").glob("*/record.json"):
        assert json.loads(path.read_text())["status"] == "interrupted"
