"""Errors a user can fix. The CLI prints their message as a single line and exits non-zero."""


class UserError(Exception):
    """Bad input (names, ranges, missing data or weights): say what to do, in one line."""


class NanLossError(RuntimeError):
    """Training diverged; the cell is recorded as failed with the step it happened at."""

    def __init__(self, step: int):
        super().__init__(f"loss became NaN/inf at optimizer step {step}")
        self.step = step
