"""Task registry. Entries register themselves when their module is imported below."""

from seven_bench.registry import Registry
from seven_bench.tasks.base import TaskData, TaskEntry, TaskInfo

TASKS: Registry[TaskEntry] = Registry("task")

from seven_bench.tasks import glue  # noqa: E402,F401  (registers the nine GLUE tasks)
from seven_bench.tasks import images  # noqa: E402,F401  (registers mnist, svhn, gtsrb, cifar10, cifar100, imagenet)

__all__ = ["TASKS", "TaskData", "TaskEntry", "TaskInfo"]
