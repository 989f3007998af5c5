"""SQuAD v1.1 questions from the official JSON files (local first) or the hub's ``rajpurkar/squad``, the
labelled dev-file stand-in for a missing train file, and the checksums that say which file was read.

Every question becomes one row in the hub's layout, so both routes give identical rows:
``{"id", "title", "context", "question", "answers": {"text": [...], "answer_start": [...]}}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from seven_bench.errors import UserError
from seven_bench.sources import file_digest

HUB_ID = "rajpurkar/squad"
DIRECTORY = "squad"
TRAIN_FILE, DEV_FILE = "train-v1.1.json", "dev-v1.1.json"
# The official files' MD5s: train from torchtext's SQuAD1 table, dev from the rajpurkar/SQuAD-explorer blob
# that ../shared/data/squad/dev-v1.1.json equals (ALGORITHMS.md 7.8).
OFFICIAL_MD5 = {TRAIN_FILE: "981b29407e0affa3b1b156f72073b945", DEV_FILE: "3e85deb501d4e538b6bc56f786231552"}
OFFICIAL_URL = "https://rajpurkar.github.io/SQuAD-explorer/dataset/"

PROXY_BY_ARTICLE = "by_article"
PROXY_EVAL_ARTICLES = 10  # the official dev file's last 10 of 48 articles are evaluated, the first 38 trained on


def local_file(root: Path | None, name: str) -> Path | None:
    """<root>/squad/<name> when it exists."""
    if root is None:
        return None
    path = Path(root) / DIRECTORY / name
    return path if path.is_file() else None


def read_json(path: Path) -> list[dict[str, Any]]:
    """Every question of an official-format file, in file order."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        articles = data["data"]
        rows = [
            {
                "id": str(qa["id"]),
                "title": str(article.get("title", "")),
                "context": paragraph["context"],
                "question": qa["question"],
                "answers": {
                    "text": [a["text"] for a in qa["answers"]],
                    "answer_start": [int(a["answer_start"]) for a in qa["answers"]],
                },
            }
            for article in articles
            for paragraph in article["paragraphs"]
            for qa in paragraph["qas"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(
            f"{path} is not a SQuAD v1.1 file ({type(err).__name__}: {err}): "
            "expected the official JSON {'data': [{'title', 'paragraphs': [{'context', 'qas'}]}]}"
        ) from None
    if not rows:
        raise UserError(f"{path} holds no questions: expected the official SQuAD v1.1 JSON")
    return rows


def read_hub(split: str) -> list[dict[str, Any]]:
    """The hub's split ("train" or "validation") as plain rows."""
    import datasets  # heavy: only on the hub route

    ds = datasets.load_dataset(HUB_ID, split=split)
    return [
        {
            "id": str(r["id"]),
            "title": r["title"],
            "context": r["context"],
            "question": r["question"],
            "answers": {
                "text": list(r["answers"]["text"]),
                "answer_start": [int(s) for s in r["answers"]["answer_start"]],
            },
        }
        for r in ds
    ]


def read_split(split: str, root: Path | None) -> tuple[list[dict[str, Any]], str]:
    """(rows, source) of "train" or "dev": the local official file first, else the hub."""
    name, hub_split = (TRAIN_FILE, "train") if split == "train" else (DEV_FILE, "validation")
    path = local_file(root, name)
    if path is not None:
        return read_json(path), f"local:{path}"
    return read_hub(hub_split), f"hub:{HUB_ID}:{hub_split}"


def split_by_article(
    rows: Sequence[dict[str, Any]], eval_articles: int = PROXY_EVAL_ARTICLES
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """(train rows, eval rows, description): the last `eval_articles` articles (titles in file order) are
    evaluated, the others trained on, so no paragraph is seen in both."""
    titles = list(dict.fromkeys(r["title"] for r in rows))
    if len(titles) <= eval_articles:
        raise UserError(
            f"task.proxy_split={PROXY_BY_ARTICLE} needs more than {eval_articles} articles in the dev file; "
            f"it has {len(titles)}"
        )
    held_out = set(titles[-eval_articles:])
    train = [r for r in rows if r["title"] not in held_out]
    evals = [r for r in rows if r["title"] in held_out]
    info = {
        "train_articles": len(titles) - eval_articles,
        "eval_articles": eval_articles,
        "train_questions": len(train),
        "eval_questions": len(evals),
        "eval_titles": titles[-eval_articles:],
    }
    return train, evals, info


def md5_check(path: Path) -> tuple[dict[str, Any], str | None]:
    """({file, md5, official_md5, official}, a warning when an official file name holds other bytes)."""
    md5 = file_digest(path, "md5")
    expected = OFFICIAL_MD5.get(Path(path).name)
    check = {"file": Path(path).name, "md5": md5, "official_md5": expected, "official": md5 == expected}
    warning = None
    if expected is not None and md5 != expected:
        warning = f"{path} has MD5 {md5}, not the official {expected}: the SQuAD numbers are not on the official file"
    return check, warning
