"""GLUE splits written as the standard GLUE TSVs (the files of GLUE's download_glue_data.py), the layout
`seven_bench.tasks.glue` reads first: `seven-bench-prepare` turns the hub's dataset into these files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

# The standard GLUE TSV layout per task (the files of GLUE's download_glue_data.py), so that other GLUE
# readers can use the written files too. CoLA's files have no header row. Columns the hub dataset lacks
# (genre, parses, sentence ids, ...) are left empty; an index column gets the hub's `idx`.
GLUE_COLUMNS: dict[str, tuple[str, ...]] = {
    "cola": ("source", "label", "mark", "sentence"),
    "sst2": ("sentence", "label"),
    "mrpc": ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
    "stsb": (
        "index",
        "genre",
        "filename",
        "year",
        "old_index",
        "source1",
        "source2",
        "sentence1",
        "sentence2",
        "score",
    ),
    "qqp": ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
    "mnli": (
        "index",
        "promptID",
        "pairID",
        "genre",
        "sentence1_binary_parse",
        "sentence2_binary_parse",
        "sentence1_parse",
        "sentence2_parse",
        "sentence1",
        "sentence2",
        "label1",
        "gold_label",
    ),
    "qnli": ("index", "question", "sentence", "label"),
    "rte": ("index", "sentence1", "sentence2", "label"),
    "wnli": ("index", "sentence1", "sentence2", "label"),
}

_INDEX_COLUMNS = ("index", "id")


def _field(text: Any) -> str:
    """GLUE TSVs have no quoting, so a tab or line break inside a field would split it: make them spaces."""
    return " ".join(str(text).replace("\r", " ").replace("\n", " ").split("\t"))


def glue_row(task: str, example: Mapping[str, Any], position: int) -> list[str]:
    """One hub example ({hub text columns, "label", optional "idx"}) as a row of the task's GLUE TSV,
    with the label encoded as seven_bench.tasks.glue reads it back (class name, integer or score)."""
    from seven_bench.tasks.glue import SPECS

    spec = SPECS[task]
    label = example["label"]
    if spec.num_labels == 1:
        label_text = repr(float(label))  # repr round-trips the hub's float exactly
    elif not 0 <= int(label) < spec.num_labels:
        raise ValueError(f"{task}: label {label!r} of example {position} is not a class id (an unlabeled test split?)")
    else:
        label_text = spec.class_names[int(label)] if spec.named_labels else str(int(label))
    (col_a, col_b, col_label), (hub_a, hub_b) = spec.local_columns, spec.hub_columns
    values = {col_a: example[hub_a], col_label: label_text}
    if col_b is not None and hub_b is not None:
        values[col_b] = example[hub_b]
    for column in _INDEX_COLUMNS:
        values.setdefault(column, example.get("idx", position))
    return [_field(values.get(column, "")) for column in GLUE_COLUMNS[task]]


def write_glue_split(task: str, examples: Iterable[Mapping[str, Any]], path: Path) -> int:
    """Write one split as a GLUE TSV (the file's encoding, header or not, as the official file has it),
    atomically: a killed run leaves no partial file that would pass for data. Returns the row count."""
    from seven_bench.tasks.glue import SPECS

    spec = SPECS[task]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    rows = 0
    try:
        with open(tmp, "w", encoding=spec.encoding, newline="") as f:
            if spec.fieldnames is None:
                f.write("\t".join(GLUE_COLUMNS[task]) + "\n")
            for position, example in enumerate(examples):
                f.write("\t".join(glue_row(task, example, position)) + "\n")
                rows += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return rows
