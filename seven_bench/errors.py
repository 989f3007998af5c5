"""Errors a user can fix. The CLI prints their message as a single line and exits non-zero."""


class UserError(Exception):
    """Bad input (names, ranges, missing data or weights): say what to do, in one line."""


class NanLossError(RuntimeError):
    """Training diverged; the cell is recorded as failed with the step it happened at."""

    def __init__(self, step: int):
        super().__init__(f"loss became NaN/inf at optimizer step {step}")
        self.step = step


class CellInterrupted(BaseException):
    """SIGTERM (a scheduler's preemption, `kill`, a dead sweep parent) during a cell. A BaseException, like
    KeyboardInterrupt, so the cell's `except Exception` does not record it as a failure and the process
    still stops; the cell records itself as interrupted on the way out."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum
