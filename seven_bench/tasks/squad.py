"""SQuAD v1.1 extractive question answering (``task=squad``), the text panel of SEVEN's Fig. 4.

Data come from ``$SEVEN_BENCH_DATA/squad/{train,dev}-v1.1.json`` (the official files; their MD5 is checked
and recorded) or else from the hub's ``rajpurkar/squad``. Where only the dev file can be had,
``task.proxy_split=by_article`` trains on its first 38 articles and evaluates on its last 10: a stand-in,
labelled as such in the record (``data_info.stand_in``, the ``proxy_dev`` split) and kept apart in the tables.

The reported metric is the official token F1, exact match beside it; both are recorded as fractions, like
every metric of a record (the tables print percent). Preprocessing and decoding: squad_features.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from seven_bench.errors import UserError
from seven_bench.sources import DATA_ENV, fingerprint_files, hub_reachable
from seven_bench.tasks.base import TASKS, TaskData, TaskEntry, TaskInfo
from seven_bench.tasks.squad_data import (
    DEV_FILE,
    DIRECTORY,
    PROXY_BY_ARTICLE,
    PROXY_EVAL_ARTICLES,
    TRAIN_FILE,
    local_file,
    md5_check,
    read_split,
    split_by_article,
)
from seven_bench.tasks.squad_features import Windows, best_spans, featurize
from seven_bench.tasks.squad_metric import squad_v1_scores

NAME = "squad"
EVAL_SPLIT, PROXY_EVAL_SPLIT = "dev", "proxy_dev"
PAIR_SPECIAL_TOKENS = 3  # [CLS] question [SEP] context [SEP]

INFO = TaskInfo(
    name=NAME,
    modality="text",
    num_labels=2,  # the QA head's two outputs per token: start and end logits
    reported_metric="f1",
    description="SQuAD v1.1: extractive question answering (F1, exact match beside)",
    head="question_answering",
)


def is_proxy(cfg: Mapping[str, Any]) -> bool:
    return cfg.get("proxy_split") == PROXY_BY_ARTICLE


def _files(cfg: Mapping[str, Any]) -> list[str]:
    return [DEV_FILE] if is_proxy(cfg) else [TRAIN_FILE, DEV_FILE]


def local_files(cfg: Mapping[str, Any], root: Path | None) -> list[Path]:
    """The local official files this configuration reads (one that is absent comes from the hub)."""
    return [p for p in (local_file(root, name) for name in _files(cfg)) if p is not None]


def _check_geometry(cfg: Mapping[str, Any]) -> None:
    max_length, stride, query = int(cfg["max_length"]), int(cfg["doc_stride"]), int(cfg["max_query_length"])
    room = max_length - query - PAIR_SPECIAL_TOKENS
    if stride >= room:
        raise UserError(
            f"task.doc_stride={stride} must be below the context room of a window, task.max_length - "
            f"task.max_query_length - {PAIR_SPECIAL_TOKENS} = {room}: lower doc_stride or max_query_length, "
            "or raise max_length"
        )


def check_available(cfg: Mapping[str, Any], root: Path | None) -> None:
    """Window sizes that fit, and the files this configuration reads (local, or the hub reachable); a local
    file must be non-empty JSON. Loads nothing."""
    _check_geometry(cfg)
    missing = [name for name in _files(cfg) if local_file(root, name) is None]
    if missing and not hub_reachable():
        folder = f"{root}/{DIRECTORY}" if root is not None else f"${DATA_ENV}/{DIRECTORY}"
        why = f"{DATA_ENV} is unset" if root is None else "missing: " + ", ".join(missing)
        if TRAIN_FILE in missing:
            way_out = (
                f"fetch it with seven-bench-prepare --tasks squad on a machine with internet, or run the labelled "
                f"stand-in task.proxy_split={PROXY_BY_ARTICLE} (trains on the dev file's first articles, "
                f"evaluates on its last {PROXY_EVAL_ARTICLES})"
            )
        else:
            way_out = f"fetch it with seven-bench-prepare --tasks squad, or set {DATA_ENV} to a folder holding it"
        raise UserError(
            f"no SQuAD v1.1 {' and '.join(missing)} at {folder} ({why}) and the Hugging Face hub is unreachable: "
            f"{way_out}"
        )
    for path in local_files(cfg, root):
        with open(path, "rb") as f:
            head = f.read(64).lstrip()
        if not head.startswith(b"{"):
            raise UserError(f"{path} is empty or not JSON: expected the official SQuAD v1.1 file")


@dataclass(frozen=True)
class SpanCollator:
    """Pads a list of windows to the longest in the batch, always on the right, so the start/end positions
    and the offsets stay token indices of the unpadded window; positions become int64 tensors."""

    pad_token_id: int
    pad_token_type_id: int

    def __call__(self, windows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        length = max(len(w["input_ids"]) for w in windows)
        fills = {"input_ids": self.pad_token_id, "token_type_ids": self.pad_token_type_id}
        batch: dict[str, torch.Tensor] = {}
        for key in (k for k in windows[0] if k not in ("start_positions", "end_positions")):
            out = torch.full((len(windows), length), fills.get(key, 0), dtype=torch.long)
            for row, w in enumerate(windows):
                out[row, : len(w[key])] = torch.as_tensor(w[key], dtype=torch.long)
            batch[key] = out
        for key in ("start_positions", "end_positions"):
            batch[key] = torch.tensor([int(w[key]) for w in windows], dtype=torch.long)
        return batch


@dataclass
class SquadMetric:
    """(span logits of every evaluation window, in loader order; their targets, unused) -> {"f1",
    "exact_match"} as fractions, scored over every evaluated question by the official v1.1 rules."""

    windows: Windows
    rows: Sequence[dict[str, Any]]
    n_best: int
    max_answer_length: int

    def __call__(self, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        logits = np.asarray(predictions)
        if logits.ndim != 3 or logits.shape[0] != len(self.windows.features):
            raise ValueError(f"expected span logits for {len(self.windows.features)} windows, got {logits.shape}")
        contexts = [row["context"] for row in self.rows]
        spans = best_spans(logits[..., 0], logits[..., 1], self.windows, contexts, self.n_best, self.max_answer_length)
        answers = {self.rows[question]["id"]: text for question, text in spans.items()}
        scores = squad_v1_scores(answers, {row["id"]: row["answers"]["text"] for row in self.rows})
        return {"f1": scores["f1"] / 100.0, "exact_match": scores["exact_match"] / 100.0}


def _first(rows: list[dict[str, Any]], limit: Any) -> list[dict[str, Any]]:
    """The first `limit` questions (a deterministic subsample for smoke runs, as for GLUE); all when None."""
    return rows if limit is None else rows[: int(limit)]


def load(cfg: Mapping[str, Any], root: Path | None, bundle: Any) -> TaskData:
    """Read (or split the dev file), cap, cut into windows with bundle.tokenizer, describe for the record."""
    tokenizer = bundle.tokenizer
    max_length, stride, query = int(cfg["max_length"]), int(cfg["doc_stride"]), int(cfg["max_query_length"])
    max_train, max_eval = cfg.get("max_train_examples"), cfg.get("max_eval_examples")
    stand_in = None
    if is_proxy(cfg):
        rows, source = read_split("dev", root)
        train_rows, eval_rows, proxy = split_by_article(rows)
        split = PROXY_EVAL_SPLIT
        sources = {"train": f"{source} (first {proxy['train_articles']} articles)", split: f"{source} (last 10)"}
        stand_in = {
            "proxy_split": PROXY_BY_ARTICLE,
            "note": "not SQuAD v1.1 numbers: trained on the dev file's first articles, evaluated on its last ones",
            **proxy,
        }
    else:
        (train_rows, train_source), (eval_rows, eval_source) = read_split("train", root), read_split("dev", root)
        split, sources = EVAL_SPLIT, {"train": train_source, EVAL_SPLIT: eval_source}
    train_rows, eval_rows = _first(train_rows, max_train), _first(eval_rows, max_eval)
    train = featurize(train_rows, tokenizer, max_length, stride, query)
    evals = featurize(eval_rows, tokenizer, max_length, stride, query)
    warnings: list[str] = []
    if stand_in is not None:
        warnings.append(f"stand-in data (task.proxy_split={PROXY_BY_ARTICLE}): {stand_in['note']}")
    checks = []
    for path in local_files(cfg, root):
        check, warning = md5_check(path)
        checks.append(check)
        if warning:
            warnings.append(warning)
    n_best, max_answer = int(cfg["n_best"]), int(cfg["max_answer_length"])
    return TaskData(
        train=train.features,
        evals={split: evals.features},
        collate=SpanCollator(int(tokenizer.pad_token_id), int(getattr(tokenizer, "pad_token_type_id", 0))),
        metric=SquadMetric(evals, eval_rows, n_best, max_answer),
        info={
            "source": sources,
            "stand_in": stand_in,
            "num_examples": {"train": len(train_rows), split: len(eval_rows)},
            "num_windows": {"train": len(train.features), split: len(evals.features)},
            "max_train_examples": max_train,
            "max_eval_examples": max_eval,
            "max_length": max_length,
            "doc_stride": stride,
            "max_query_length": query,
            "n_best": n_best,
            "max_answer_length": max_answer,
            "reported_metric": INFO.reported_metric,
            "reported_split": split,
            "metrics_scale": "fractions (the official script's percent / 100)",
            "files": fingerprint_files(local_files(cfg, root), root),
            "md5": checks,
            "warnings": warnings,
        },
    )


TASKS.add(NAME, TaskEntry(info=INFO, check_available=check_available, load=load, local_files=local_files))
