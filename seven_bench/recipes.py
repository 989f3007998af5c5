"""Fine-tuning recipes: the paper's training settings as data, chosen by model family and timing.

Precedence when resolving a cell's trainer: the recipe below < the pruner's own recipe (a baseline
trained with its own paper's settings, e.g. PLATON's adamax) < values the user typed (trainer.lr=...).
"""

from __future__ import annotations

from typing import Any

RECIPES: dict[str, dict[str, Any]] = {
    # SEVEN-pre on GLUE "following BERT-Tickets": HF run_glue defaults (AdamW, linear decay, clip 1.0).
    "bert_pre": dict(
        optimizer="adamw",
        lr=2e-5,
        weight_decay=0.0,
        betas=[0.9, 0.999],
        batch_size=32,
        eval_batch_size=128,
        epochs=3,
        warmup_steps=0,
        lr_schedule="linear",
        max_grad_norm=1.0,
    ),
    # SEVEN-dyn code: AdamW, constant lr 2e-5 (its scheduler is defined but never used), 10 epochs.
    "seven_dyn": dict(
        optimizer="adamw",
        lr=2e-5,
        weight_decay=0.0,
        betas=[0.9, 0.999],
        batch_size=32,
        eval_batch_size=128,
        epochs=10,
        warmup_steps=0,
        lr_schedule="constant",
        max_grad_norm=None,
    ),
    # SEVEN appendix, SQuAD v1.1: 3 epochs, lr 3e-5, batch 16; the rest as bert_pre (HF run_squad's AdamW,
    # linear decay, clip 1.0). Evaluation batches of 384-token windows stay at 64.
    "squad_pre": dict(
        optimizer="adamw",
        lr=3e-5,
        weight_decay=0.0,
        betas=[0.9, 0.999],
        batch_size=16,
        eval_batch_size=64,
        epochs=3,
        warmup_steps=0,
        lr_schedule="linear",
        max_grad_norm=1.0,
    ),
    # CLIP (Table B2): Adam, lr 2e-5, 10 epochs, 500 warm-up steps then cosine; batch 128 (ISP's default).
    "clip": dict(
        optimizer="adam",
        lr=2e-5,
        weight_decay=0.0,
        betas=[0.9, 0.999],
        batch_size=128,
        eval_batch_size=256,
        epochs=10,
        warmup_steps=500,
        lr_schedule="cosine",
        max_grad_norm=None,
    ),
}

TRAINER_KEYS = (
    "optimizer",
    "lr",
    "weight_decay",
    "betas",
    "batch_size",
    "eval_batch_size",
    "epochs",
    "max_steps",
    "warmup_steps",
    "lr_schedule",
    "max_grad_norm",
)


def base_recipe(modality: str, timing: str, task: str | None = None) -> str:
    if modality == "image":
        return "clip"
    if timing == "dyn":
        return "seven_dyn"
    return "squad_pre" if task == "squad" else "bert_pre"


def resolve_trainer(
    user: dict[str, Any],
    modality: str,
    timing: str,
    pruner_trainer: dict[str, Any] | None,
    pruner_name: str,
    task: str | None = None,
) -> dict[str, Any]:
    """The full trainer settings of a cell, plus `recipe`: which recipe the values came from."""
    requested = user.get("recipe", "auto")
    if requested not in ("auto", "own", *RECIPES):
        from seven_bench.errors import UserError

        raise UserError(f"unknown trainer.recipe '{requested}': choose auto, own or one of {', '.join(RECIPES)}")
    name = base_recipe(modality, timing, task) if requested in ("auto", "own") else requested
    settings: dict[str, Any] = {"max_steps": None, **RECIPES[name]}
    if pruner_trainer and requested in ("auto", "own"):
        settings.update(pruner_trainer)
        name = pruner_name
    overridden = {k: user[k] for k in TRAINER_KEYS if user.get(k) is not None}
    settings.update(overridden)
    settings["recipe"] = name + ("+overrides" if overridden else "")
    # Which settings the user typed: the tables give such runs a column of their own (a 12-epoch SEVEN-pre is
    # a budget-matched control, not another seed of the 3-epoch row), and the record says which they were.
    settings["overrides"] = sorted(overridden)
    return settings
