"""Task registry. The registry lives in base.py; importing the task modules here registers their entries."""

from seven_bench.tasks import glue, images, squad  # noqa: F401  (register the nine GLUE tasks; the six image sets; SQuAD)
from seven_bench.tasks.base import TASKS, TaskData, TaskEntry, TaskInfo

__all__ = ["TASKS", "TaskData", "TaskEntry", "TaskInfo"]
