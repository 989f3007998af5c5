"""The nine GLUE tasks: local TSVs first (standard GLUE download layout), the hub second.

Examples read from either route are identical in text and label ids, because the local label
encodings follow the Hugging Face ``nyu-mll/glue`` dataset (RTE/QNLI: entailment=0; MNLI:
entailment=0, neutral=1, contradiction=2; every other task keeps the file's integer or score).

Reported metrics. The SEVEN paper does not say which metric its MRPC, QQP and STS-B columns use.
Its dense row copies BERT-Tickets (Chen et al. 2020), whose Table 1 names the metrics: MNLI matched
accuracy, QQP accuracy, STS-B Pearson, CoLA Matthews correlation, accuracy for MRPC and the rest (its
MRPC 85.2 is an accuracy; BERT-base's MRPC F1 is near 89). We follow that, and write it into every run
record through ``TaskData.info``. Every metric GLUE defines is still
computed and recorded, so another choice needs no rerun. MNLI is evaluated on both dev sets; its
reported number is the "matched" split (``info["reported_split"]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from seven_bench.errors import UserError
from seven_bench.sources import DATA_ENV, fingerprint_files, hub_reachable
from seven_bench.tasks.base import TASKS, TaskData, TaskEntry, TaskInfo
from seven_bench.tasks.glue_tsv import DEV, TRAIN, EvalSplit, GlueSpec, read_tsv  # noqa: F401
from seven_bench.tasks.metrics import constant_prediction, glue_metrics

HUB_ID = "nyu-mll/glue"
_NLI = ("entailment", "not_entailment")
_PAIR = ("sentence1", "sentence2")

SPECS: dict[str, GlueSpec] = {
    s.task: s
    for s in (
        GlueSpec(
            task="cola",
            directory="CoLA",
            hub_config="cola",
            local_columns=("sentence", None, "label"),
            hub_columns=("sentence", None),
            num_labels=2,
            class_names=("unacceptable", "acceptable"),
            reported_metric="mcc",
            description="CoLA: grammatical acceptability",
            fieldnames=("source", "label", "mark", "sentence"),
        ),
        GlueSpec(
            task="sst2",
            directory="SST-2",
            hub_config="sst2",
            local_columns=("sentence", None, "label"),
            hub_columns=("sentence", None),
            num_labels=2,
            class_names=("negative", "positive"),
            reported_metric="accuracy",
            description="SST-2: binary sentiment",
        ),
        GlueSpec(
            task="mrpc",
            directory="MRPC",
            hub_config="mrpc",
            local_columns=("#1 String", "#2 String", "Quality"),
            hub_columns=_PAIR,
            num_labels=2,
            class_names=("not_equivalent", "equivalent"),
            reported_metric="accuracy",
            description="MRPC: paraphrase detection",
            encoding="utf-8-sig",  # the official train/dev files start with a BOM
        ),
        GlueSpec(
            task="stsb",
            directory="STS-B",
            hub_config="stsb",
            local_columns=("sentence1", "sentence2", "score"),
            hub_columns=_PAIR,
            num_labels=1,
            class_names=(),
            reported_metric="pearson",
            description="STS-B: sentence similarity, a 0-5 score (regression)",
        ),
        GlueSpec(
            task="qqp",
            directory="QQP",
            hub_config="qqp",
            local_columns=("question1", "question2", "is_duplicate"),
            hub_columns=("question1", "question2"),
            num_labels=2,
            class_names=("not_duplicate", "duplicate"),
            reported_metric="accuracy",
            description="QQP: duplicate question detection",
        ),
        GlueSpec(
            task="mnli",
            directory="MNLI",
            hub_config="mnli",
            local_columns=("sentence1", "sentence2", "gold_label"),
            hub_columns=("premise", "hypothesis"),
            num_labels=3,
            class_names=("entailment", "neutral", "contradiction"),
            reported_metric="accuracy",
            description="MNLI: three-way entailment, reported on dev matched",
            eval_splits=(
                EvalSplit("matched", "dev_matched.tsv", "validation_matched"),
                EvalSplit("mismatched", "dev_mismatched.tsv", "validation_mismatched"),
            ),
            named_labels=True,
        ),
        GlueSpec(
            task="qnli",
            directory="QNLI",
            hub_config="qnli",
            local_columns=("question", "sentence", "label"),
            hub_columns=("question", "sentence"),
            num_labels=2,
            class_names=_NLI,
            reported_metric="accuracy",
            description="QNLI: does the sentence answer the question",
            named_labels=True,
        ),
        GlueSpec(
            task="rte",
            directory="RTE",
            hub_config="rte",
            local_columns=("sentence1", "sentence2", "label"),
            hub_columns=_PAIR,
            num_labels=2,
            class_names=_NLI,
            reported_metric="accuracy",
            description="RTE: textual entailment",
            named_labels=True,
        ),
        GlueSpec(
            task="wnli",
            directory="WNLI",
            hub_config="wnli",
            local_columns=("sentence1", "sentence2", "label"),
            hub_columns=_PAIR,
            num_labels=2,
            class_names=("not_entailment", "entailment"),
            reported_metric="accuracy",
            description="WNLI: Winograd pronoun resolution as entailment",
        ),
    )
}


def _spec(task: str) -> GlueSpec:
    if task not in SPECS:
        raise UserError(f"unknown GLUE task '{task}': choose one of {', '.join(sorted(SPECS))}")
    return SPECS[task]


def _split_source(spec: GlueSpec, split: str) -> tuple[str, str]:
    """(local file name, hub split name) of a split given by its TaskData name or "train"."""
    if split == TRAIN:
        return "train.tsv", "train"
    for s in spec.eval_splits:
        if s.name == split:
            return s.file, s.hub_split
    raise UserError(f"task {spec.task} has no split '{split}': choose one of {', '.join(spec.splits())}")


def local_path(task: str, split: str, root: Path | None) -> Path | None:
    """The local TSV for a split, or None when root is unset or the file is absent."""
    spec = _spec(task)
    file, _ = _split_source(spec, split)
    if root is None:
        return None
    path = Path(root) / "glue" / spec.directory / file
    return path if path.is_file() else None


def _read_hub(spec: GlueSpec, hub_split: str) -> list[dict[str, Any]]:
    import datasets  # heavy: only when the local route is missing

    ds = datasets.load_dataset(HUB_ID, spec.hub_config, split=hub_split)
    col_a, col_b = spec.hub_columns
    texts_b = list(ds[col_b]) if col_b is not None else [None] * len(ds)
    cast = float if spec.num_labels == 1 else int
    return [
        {"text_a": a, "text_b": b, "label": cast(y)} for a, b, y in zip(list(ds[col_a]), texts_b, list(ds["label"]))
    ]


def read_glue(task: str, split: str, root: Path | None, warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """Examples {"text_a", "text_b" (None for single-sentence tasks), "label"} of one split
    ("train", or an eval split name: "dev"; MNLI "matched"/"mismatched"), local file first.
    Data warnings (dropped rows) are appended to `warnings` when given."""
    spec = _spec(task)
    path = local_path(task, split, root)
    if path is not None:
        return read_tsv(spec, path, warnings)
    return _read_hub(spec, _split_source(spec, split)[1])


def local_files(task: str, cfg: Mapping[str, Any], root: Path | None) -> list[Path]:
    """The local TSVs this task reads (a split without one comes from the hub)."""
    return [p for p in (local_path(task, s, root) for s in _spec(task).splits()) if p is not None]


def check_available(task: str, cfg: Mapping[str, Any], root: Path | None) -> None:
    """Cheap pre-flight: local train and eval files all present, or the hub reachable; and each local
    file readable with at least one usable row (its header and first rows only)."""
    spec = _spec(task)
    if all(local_path(task, s, root) is not None for s in spec.splits()) or hub_reachable():
        for path in local_files(task, cfg, root):
            read_tsv(spec, path, first_only=True)
        return
    files = spec.files()
    expected = ", ".join(files[:-1]) + " and " + files[-1]
    if root is None:
        folder, why = f"${DATA_ENV}/glue/{spec.directory}", f"{DATA_ENV} is unset"
    else:
        folder = f"{root}/glue/{spec.directory}"
        why = "missing: " + ", ".join(f for f in files if not Path(folder, f).is_file())
    raise UserError(
        f"no local data for task {task}: expected {folder}/{expected} ({why}) "
        f"and the Hugging Face hub is unreachable; set {DATA_ENV} to a folder with that layout"
    )


@dataclass(frozen=True)
class GlueCollator:
    """Pads a list of featurized examples to the longest in the batch, like
    transformers.DataCollatorWithPadding, but with label dtypes fixed here (int64 class ids,
    float32 regression targets) rather than inferred from Python values."""

    pad_token_id: int
    pad_token_type_id: int
    padding_side: str  # "right" or "left", from the tokenizer
    label_dtype: torch.dtype

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        length = max(len(e["input_ids"]) for e in examples)
        fills = {"input_ids": self.pad_token_id, "token_type_ids": self.pad_token_type_id}
        batch: dict[str, torch.Tensor] = {}
        for key in (k for k in examples[0] if k != "labels"):
            out = torch.full((len(examples), length), fills.get(key, 0), dtype=torch.long)
            for row, e in enumerate(examples):
                values = torch.as_tensor(e[key], dtype=torch.long)
                if self.padding_side == "left":
                    out[row, length - len(values) :] = values
                else:
                    out[row, : len(values)] = values
            batch[key] = out
        labels = np.array([e["labels"] for e in examples])
        batch["labels"] = torch.tensor(labels, dtype=self.label_dtype)
        return batch


def featurize(
    examples: list[dict[str, Any]], tokenizer: Any, max_length: int, regression: bool
) -> list[dict[str, Any]]:
    """Tokenize (as pairs when text_b is present), truncate, do not pad. Token ids are stored as
    int32 arrays so MNLI/QQP-sized training sets fit in memory comfortably."""
    if not examples:
        return []
    texts_a = [e["text_a"] for e in examples]
    texts_b = [e["text_b"] for e in examples] if examples[0]["text_b"] is not None else None
    enc = tokenizer(texts_a, texts_b, truncation=True, max_length=max_length)
    keys = list(enc.keys())
    label_type = np.float32 if regression else np.int64
    features = []
    for i, e in enumerate(examples):
        feature: dict[str, Any] = {k: np.asarray(enc[k][i], dtype=np.int32) for k in keys}
        feature["labels"] = label_type(e["label"])
        features.append(feature)
    return features


def _first(examples: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    """First `limit` examples (deterministic subsample for smoke runs); all when None."""
    return examples if limit is None else examples[: int(limit)]


def load(task: str, cfg: Mapping[str, Any], root: Path | None, bundle: Any) -> TaskData:
    """Read, subsample, tokenize with bundle.tokenizer, and describe the data for the record."""
    spec = _spec(task)
    tokenizer = bundle.tokenizer
    max_length = int(cfg.get("max_length", 128))
    regression = spec.num_labels == 1
    max_train, max_eval = cfg.get("max_train_examples"), cfg.get("max_eval_examples")

    def source(split: str) -> str:
        path = local_path(task, split, root)
        return f"local:{path}" if path is not None else f"hub:{HUB_ID}"

    splits = spec.splits()
    warnings: list[str] = []
    raw = {s: read_glue(task, s, root, warnings) for s in splits}
    raw = {s: _first(ex, max_train if s == TRAIN else max_eval) for s, ex in raw.items()}
    feats = {s: featurize(ex, tokenizer, max_length, regression) for s, ex in raw.items()}
    collate = GlueCollator(
        pad_token_id=int(tokenizer.pad_token_id),
        pad_token_type_id=int(getattr(tokenizer, "pad_token_type_id", 0)),
        padding_side=str(getattr(tokenizer, "padding_side", "right")),
        label_dtype=torch.float32 if regression else torch.long,
    )
    return TaskData(
        train=feats[TRAIN],
        evals={s.name: feats[s.name] for s in spec.eval_splits},
        collate=collate,
        metric=partial(glue_metrics, task),
        info={
            "source": {s: source(s) for s in splits},
            "num_examples": {s: len(f) for s, f in feats.items()},
            "max_train_examples": max_train,
            "max_eval_examples": max_eval,
            "max_length": max_length,
            "reported_metric": spec.reported_metric,
            "reported_split": spec.reported_split,
            "files": fingerprint_files(local_files(task, cfg, root), root),
            "constant_prediction": {
                s.name: constant_prediction(task, np.array([f["labels"] for f in feats[s.name]]), spec.reported_metric)
                for s in spec.eval_splits
                if feats[s.name]
            },
            "warnings": warnings,
        },
    )


def _register() -> None:
    for spec in SPECS.values():
        info = TaskInfo(
            name=spec.task,
            modality="text",
            num_labels=spec.num_labels,
            reported_metric=spec.reported_metric,
            class_names=spec.class_names,
            description=spec.description,
        )
        entry = TaskEntry(
            info=info,
            check_available=partial(check_available, spec.task),
            load=partial(load, spec.task),
            local_files=partial(local_files, spec.task),
        )
        TASKS.add(spec.task, entry)


_register()
