"""The official SQuAD v1.1 scoring (``evaluate-v1.1.py`` of rajpurkar/SQuAD-explorer), re-implemented here
because ``evaluate.load("squad")`` fetches its script from the hub, which an offline node cannot reach.

Both numbers are computed per question as the maximum over its gold answers, after the official answer
normalisation (lower case, punctuation removed, the articles a/an/the removed, whitespace collapsed), and
averaged over every question, a question without a prediction counting 0, as in the official script.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Callable, Mapping, Sequence

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """The official normalisation, in the official order: lower, punctuation, articles, whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Harmonic mean of token precision and recall over the normalised answers' bag of tokens (0 when no
    token is shared, which covers an empty prediction)."""
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _best(score: Callable[[str, str], float], prediction: str, golds: Sequence[str]) -> float:
    return max(score(prediction, gold) for gold in golds)


def squad_v1_scores(predictions: Mapping[str, str], golds: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """{"exact_match", "f1"} in percent, as the official script prints them: `golds` maps every question id
    to its gold answer texts, `predictions` question ids to answer strings (a missing id scores 0)."""
    if not golds:
        raise ValueError("no questions to score")
    em = f1 = 0.0
    for qid, answers in golds.items():
        if qid not in predictions:
            continue
        em += _best(exact_match, predictions[qid], answers)
        f1 += _best(token_f1, predictions[qid], answers)
    return {"exact_match": 100.0 * em / len(golds), "f1": 100.0 * f1 / len(golds)}
