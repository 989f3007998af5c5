"""Stopping cleanly: SIGTERM inside a cell becomes an exception (so the cell writes an `interrupted`
record before the process exits), and a launcher worker stops when the sweep's main process dies (a
killed `seven-bench -m` must not leave workers computing and writing records nobody waits for)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

from seven_bench.errors import CellInterrupted

MAIN_PID_ENV = "SEVEN_BENCH_MAIN_PID"
log = logging.getLogger("seven_bench")
_watching = False


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise CellInterrupted(signum)


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While the block runs, SIGTERM raises CellInterrupted in the main thread; the previous handler is
    restored after. Signal handlers can only be set from the main thread, so elsewhere this does nothing.

        with sigterm_raises():
            train()  # `kill <pid>` -> CellInterrupted(15) here
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def mark_main_process() -> None:
    """Called by the CLI before Hydra starts: launcher workers inherit the variable and so know their parent."""
    os.environ[MAIN_PID_ENV] = str(os.getpid())


def watch_parent(launcher_worker: bool, poll_seconds: float = 0.5, grace_seconds: float = 3.0) -> bool:
    """In a worker of the local (joblib) launcher, which the sweep's main process started, run a daemon
    thread that sends this process SIGTERM once that parent is gone (a dead parent's children are
    re-parented, so getppid() changes; a parent already gone counts too), then exits hard after
    `grace_seconds` if the worker is still alive. Returns whether a watch started: not in the main
    process itself, nor under other launchers (a SLURM job's parent is the node's job step, and the node
    ends the job itself)."""
    global _watching
    main = os.environ.get(MAIN_PID_ENV, "")
    if _watching or not launcher_worker or not main.isdigit() or int(main) == os.getpid():
        return False
    parent = int(main)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        log.warning("the sweep's main process %d is gone: stopping worker %d", parent, os.getpid())
        os.kill(os.getpid(), signal.SIGTERM)  # inside a cell: CellInterrupted -> an interrupted record
        time.sleep(grace_seconds)
        os._exit(128 + signal.SIGTERM)

    threading.Thread(target=watch, name="seven-bench-parent-watch", daemon=True).start()
    _watching = True
    return True
