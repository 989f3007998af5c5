"""Reading a local GLUE TSV (the standard GLUE download layout) into examples, and refusing a file that
holds none: empty, header-only, not text, or every row malformed. Kept apart from glue.py, which knows
the tasks, so that the parsing rules sit in one short file."""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seven_bench.errors import UserError

log = logging.getLogger(__name__)


TRAIN = "train"


@dataclass(frozen=True)
class EvalSplit:
    name: str  # the key in TaskData.evals
    file: str  # file name in the local task folder
    hub_split: str  # split name in the hub dataset


DEV = (EvalSplit("dev", "dev.tsv", "validation"),)


@dataclass(frozen=True)
class GlueSpec:
    """Everything that differs between GLUE tasks, so the readers stay generic."""

    task: str
    directory: str  # <root>/glue/<directory>/
    hub_config: str
    local_columns: tuple[str, str | None, str]  # text_a, text_b, label column names in the TSV
    hub_columns: tuple[str, str | None]  # text_a, text_b column names in the hub dataset
    num_labels: int  # 1 = regression
    class_names: tuple[str, ...]
    reported_metric: str
    description: str
    eval_splits: tuple[EvalSplit, ...] = DEV
    named_labels: bool = False  # the TSV holds class names (mapped to their index in class_names)
    fieldnames: tuple[str, ...] | None = None  # set when the TSV has no header row (CoLA)
    encoding: str = "utf-8"

    @property
    def reported_split(self) -> str:
        return self.eval_splits[0].name

    def splits(self) -> tuple[str, ...]:
        """ "train" then the eval split names, as read_glue takes them."""
        return (TRAIN,) + tuple(s.name for s in self.eval_splits)

    def files(self) -> tuple[str, ...]:
        return ("train.tsv",) + tuple(s.file for s in self.eval_splits)


def parse_label(spec: GlueSpec, value: str, path: Path, line: int) -> int | float:
    """The label as the HF dataset encodes it; a bad one names the file and line to fix."""
    try:
        if spec.num_labels == 1:
            score = float(value)
            if math.isfinite(score):
                return score
            raise ValueError(value)
        label = spec.class_names.index(value) if spec.named_labels else int(value)
    except ValueError:
        label = -1
    if not 0 <= label < spec.num_labels:
        raise UserError(f"{path}:{line}: bad label '{value}' for task {spec.task}")
    return label


def refetch_hint(spec: GlueSpec) -> str:
    return f"replace it with the GLUE file (seven-bench-prepare --tasks {spec.task} writes it)"


def read_tsv(
    spec: GlueSpec, path: Path, warnings: list[str] | None = None, first_only: bool = False
) -> list[dict[str, Any]]:
    """Parse a GLUE TSV the way the GLUE/BERT processors and the HF builder do: tabs only, no
    quote handling (fields may start with a double quote), and rows with a missing field or an
    empty label dropped as corrupt (said in `warnings`, which goes into the run record). A file
    that is empty, header-only, not text, or without one usable row is a UserError naming it.
    `first_only` stops at the first usable row: the cheap check before anything loads."""
    col_a, col_b, col_label = spec.local_columns
    examples: list[dict[str, Any]] = []
    dropped = 0
    try:
        with open(path, encoding=spec.encoding, newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = list(spec.fieldnames) if spec.fieldnames else next(reader, None)
            if header is None:
                raise UserError(f"{path}: empty file, expected a header row; {refetch_hint(spec)}")
            missing = [c for c in (col_a, col_b, col_label) if c is not None and c not in header]
            if missing:
                raise UserError(f"{path}: no column(s) {', '.join(missing)} in header {header}; {refetch_hint(spec)}")
            i_a, i_label = header.index(col_a), header.index(col_label)
            i_b = header.index(col_b) if col_b is not None else None
            for row in reader:
                if len(row) < len(header) or not row[i_label]:
                    dropped += 1
                    continue
                examples.append(
                    {
                        "text_a": row[i_a],
                        "text_b": row[i_b] if i_b is not None else None,
                        "label": parse_label(spec, row[i_label], path, reader.line_num),
                    }
                )
                if first_only:
                    return examples
    except UnicodeDecodeError:
        raise UserError(f"{path}: not {spec.encoding} text (a binary or damaged file); {refetch_hint(spec)}") from None
    except csv.Error as err:
        raise UserError(f"{path}: not a readable TSV ({err}); {refetch_hint(spec)}") from None
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err.strerror or err}); check its permissions") from None
    if not examples:
        if dropped:
            what = f"has no usable row ({dropped} malformed)"
        else:
            what = "has no rows" if spec.fieldnames else "has a header but no rows"
        raise UserError(f"{path}: {what}; {refetch_hint(spec)}")
    if dropped:
        message = f"{path}: dropped {dropped} malformed row(s) (a missing field or an empty label; a truncated file?)"
        log.warning(message)
        if warnings is not None:
            warnings.append(message)
    return examples
