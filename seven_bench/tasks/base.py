"""What every task entry provides. Static facts (TaskInfo) are known before any data loads, so bad
combinations fail fast; data (TaskData) is loaded once the model's tokenizer/preprocess exists."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from seven_bench.registry import Registry


@dataclass(frozen=True)
class TaskInfo:
    name: str
    modality: str  # "text" or "image"
    num_labels: int  # 1 = regression
    reported_metric: str  # the key of TaskData.metric's result that the paper's tables report
    class_names: tuple[str, ...] = ()
    description: str = ""
    # the model head a task needs: "classification" (a label or a score per input; GLUE, images) or
    # "question_answering" (start and end logits per token; SQuAD)
    head: str = "classification"

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1


@dataclass
class TaskData:
    train: Sequence[dict[str, Any]]  # featurized examples (a torch Dataset or a list)
    evals: dict[str, Sequence[dict[str, Any]]]  # split name -> examples (MNLI: matched, mismatched)
    collate: Callable[[list[dict[str, Any]]], dict[str, Any]]  # examples -> batch dict with "labels"
    # (predictions, labels) -> {metric name: value}; predictions are argmax ids or regression values
    metric: Callable[[np.ndarray, np.ndarray], dict[str, float]]
    info: dict[str, Any] = field(default_factory=dict)  # data source, sizes: goes in the record


@dataclass(frozen=True)
class TaskEntry:
    info: TaskInfo
    # (task config, data root or None) -> raises UserError when no data can be had; loads nothing
    check_available: Callable[[Mapping[str, Any], Path | None], None]
    # (task config, data root, model bundle) -> TaskData
    load: Callable[[Mapping[str, Any], Path | None, Any], TaskData]
    # (task config, data root) -> the TaskInfo of this configuration, where it differs from `info`
    # (an image folder brings its own classes, which the model's head is built from). Loads nothing.
    resolve_info: Callable[[Mapping[str, Any], Path | None], TaskInfo] | None = None
    # (task config, data root) -> the local files this configuration reads (none when it reads the hub):
    # fingerprinted into the cell's spec, so different data is a different cell. Loads nothing.
    local_files: Callable[[Mapping[str, Any], Path | None], list[Path]] | None = None

    def info_for(self, cfg: Mapping[str, Any], root: Path | None) -> TaskInfo:
        return self.resolve_info(cfg, root) if self.resolve_info is not None else self.info


# The registry lives beside the contract, so task modules register without importing the package.
TASKS: Registry[TaskEntry] = Registry("task")
