"""SQuAD windows and answer spans: questions and contexts into model inputs with the answer's token span,
and start/end logits back into answer text.

The tokenizer does the heavy part (a fast tokenizer's overflowing windows and character offsets, as
transformers' ``run_qa.py``); what no library offers offline is written here: the question cut to
``max_query_length`` tokens (BERT's ``run_squad``), the answer's character span mapped onto a window's tokens
(the CLS index when a window does not hold the whole answer), and the n-best decoding of a question's
windows back to a span of its context.

``doc_stride`` is the overlap between consecutive windows of a long context, as the tokenizer's ``stride``
and ``run_qa.py`` read it (Google's ``run_squad.py`` steps windows by it instead; the two differ only for
contexts longer than one window).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from seven_bench.errors import UserError

Offsets = list[tuple[int, int] | None]  # per token: its character span in the context, None outside the context


@dataclass
class Windows:
    """Featurized windows: model inputs with start/end positions, and what decoding needs for each."""

    features: list[dict[str, Any]] = field(default_factory=list)
    example_index: list[int] = field(default_factory=list)  # the question each window belongs to
    offsets: list[Offsets] = field(default_factory=list)


def truncate_questions(questions: Sequence[str], tokenizer: Any, max_query_length: int) -> list[str]:
    """Each question (leading blanks stripped, as run_qa.py does) cut after its `max_query_length`-th token,
    at that token's last character, so the cut falls on a token boundary of the original text."""
    stripped = [q.lstrip() for q in questions]
    enc = tokenizer(stripped, add_special_tokens=False, return_offsets_mapping=True)
    return [
        q if len(offsets) <= max_query_length else q[: offsets[max_query_length - 1][1]]
        for q, offsets in zip(stripped, enc["offset_mapping"])
    ]


def answer_positions(offsets: Offsets, cls_index: int, start_char: int, end_char: int) -> tuple[int, int]:
    """(start, end) token indices of the answer characters [start_char, end_char) in one window, or
    (cls_index, cls_index) when the window's context does not hold the whole answer (BERT's target for
    an answer outside the window)."""
    context = [i for i, o in enumerate(offsets) if o is not None]
    if not context:
        return cls_index, cls_index
    first, last = context[0], context[-1]
    if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):  # type: ignore[index]
        return cls_index, cls_index
    start = first
    while start <= last and offsets[start][0] <= start_char:  # type: ignore[index]
        start += 1
    end = last
    while end >= first and offsets[end][1] >= end_char:  # type: ignore[index]
        end -= 1
    return start - 1, end + 1


def featurize(
    examples: Sequence[dict[str, Any]], tokenizer: Any, max_length: int, doc_stride: int, max_query_length: int
) -> Windows:
    """Windows of every question (several for a long context), each with the first gold answer's token
    span as start/end positions (the training target; on evaluation rows it only makes the batches alike)."""
    windows = Windows()
    if not examples:
        return windows
    if not getattr(tokenizer, "is_fast", False):
        raise UserError("task=squad needs a fast (Rust) tokenizer for character offsets: pip install tokenizers")
    question_first = getattr(tokenizer, "padding_side", "right") == "right"
    questions = truncate_questions([e["question"] for e in examples], tokenizer, max_query_length)
    contexts = [e["context"] for e in examples]
    enc = tokenizer(
        questions if question_first else contexts,
        contexts if question_first else questions,
        truncation="only_second" if question_first else "only_first",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    context_id = 1 if question_first else 0
    inputs = [k for k in enc.keys() if k not in ("offset_mapping", "overflow_to_sample_mapping")]
    for i, example_index in enumerate(enc["overflow_to_sample_mapping"]):
        sequence_ids = enc.sequence_ids(i)
        offsets: Offsets = [
            (int(o[0]), int(o[1])) if s == context_id else None for o, s in zip(enc["offset_mapping"][i], sequence_ids)
        ]
        ids = enc["input_ids"][i]
        cls_index = ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in ids else 0
        answers = examples[example_index]["answers"]
        if answers["text"]:
            start_char = answers["answer_start"][0]
            start, end = answer_positions(offsets, cls_index, start_char, start_char + len(answers["text"][0]))
        else:
            start = end = cls_index
        feature: dict[str, Any] = {k: np.asarray(enc[k][i], dtype=np.int32) for k in inputs}
        feature["start_positions"], feature["end_positions"] = np.int64(start), np.int64(end)
        windows.features.append(feature)
        windows.example_index.append(int(example_index))
        windows.offsets.append(offsets)
    return windows


def best_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    windows: Windows,
    contexts: Sequence[str],
    n_best: int,
    max_answer_length: int,
) -> dict[int, str]:
    """Question index -> predicted answer text: over all windows of a question, the n_best highest start and
    end logits are paired; a pair counts when both tokens lie in the context, end >= start and the span
    holds at most max_answer_length tokens; the highest start + end logit wins (run_qa.py's
    postprocessing for SQuAD v1). No valid pair gives the empty answer. Rows of the logits may be longer
    than a window (padding to the batch); those positions have no offsets and never count."""
    by_question: dict[int, list[int]] = defaultdict(list)
    for row, question in enumerate(windows.example_index):
        by_question[question].append(row)
    answers: dict[int, str] = {}
    for question, rows in by_question.items():
        best: tuple[float, int, int] | None = None
        for row in rows:
            offsets = windows.offsets[row]
            starts = np.argsort(start_logits[row])[-1 : -n_best - 1 : -1]
            ends = np.argsort(end_logits[row])[-1 : -n_best - 1 : -1]
            for s in starts:
                for e in ends:
                    if s >= len(offsets) or e >= len(offsets) or offsets[s] is None or offsets[e] is None:
                        continue
                    if e < s or e - s + 1 > max_answer_length:
                        continue
                    score = float(start_logits[row][s] + end_logits[row][e])
                    if best is None or score > best[0]:
                        best = (score, offsets[s][0], offsets[e][1])  # type: ignore[index]
        answers[question] = "" if best is None else contexts[question][best[1] : best[2]]
    return answers
