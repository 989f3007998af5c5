"""Which table and row a record fills, and the labels the paper prints: pure functions of one record.

The method keys are those of baselines/README.md; labels follow the paper's tables.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Mapping

from seven_bench.recipes import RECIPES, TRAINER_KEYS

DENSE = "dense"
LION_SUFFIX = "_lion"

# The paper's models. Any other model (minilm, tiny_bert, tiny_clip) is a stand-in: its rows carry the model
# name in the label and are never compared with the paper, so a stand-in is not taken for a reproduction.
PAPER_MODELS = frozenset({"bert", "clip"})
IMAGE_MODELS = frozenset({"clip", "tiny_clip"})
TEXT_MODELS = frozenset({"bert", "minilm", "tiny_bert"})

# SEVEN-pre settings of the paper's method (the official code averages |g|, eq. 12 in full). Other values are
# the score-function ablations of Table IV.
SEVEN_PRE_DEFAULTS = {"first_moment": "abs", "correction": "full"}
# Options that make another method than the published row when changed from their default (the original
# code's behaviour): such a record gets its own row, the changed options in brackets (``isp[merge=intersection]``).
ROW_OPTIONS = {
    "earlybird": {"weights": "pretrained"},
    "isp": {"merge": "union", "weak_lr": "warmup"},
    "seven_pre": {"resurrection": False},  # on: the mask-resurrection ablation of the paper's Fig. 6
}

METHOD_LABELS = {
    DENSE: "Dense",
    "random": "Random",
    "magnitude": "One-shot",
    "gmp": "Progressive",
    "earlybird": "EarlyBird",
    "snip": "SNIP",
    "grasp": "GraSP",
    "lth": "Lottery Ticket",
    "lth_rewind": "LTH-Rewind",
    "lottery_pool": "Lottery Pool",
    "isp": "ISP",
    "seven_pre": "SEVEN-pre",
    "movement": "Movement",
    "soft_movement": "Soft-Movement",
    "platon": "PLATON",
    "seven_dyn": "SEVEN-dyn",
    "iter_snip": "Iterative SNIP",
    "force": "FORCE",
    "wanda": "Wanda",
    "info_deletion": "ID",
    "seven_pre_variant_a": "SEVEN-pre variant a (label stripped)",
    "seven_pre_variant_b": "SEVEN-pre variant b (label stripped)",
    "seven_pre_variant_c": "SEVEN-pre variant c (label stripped)",
    "seven_pre_lion": "SEVEN-pre-Lion",
    "seven_pre[resurrection=True]": "SEVEN-pre with mask resurrection",
}
_FULL_BERT = {DENSE: "Full BERT-base"}
# Where a table prints a method under another name than the default above.
TABLE_METHOD_LABELS = {
    "table1": {"magnitude": "One-shot[Mag]", "gmp": "Progressive[Mag]", "lth": "LTH"},
    "table2": _FULL_BERT,
    "table3": _FULL_BERT,
    "table5": _FULL_BERT,
}

TASK_LABELS = {
    "mnist": "MNIST",
    "svhn": "SVHN",
    "gtsrb": "GTSRB",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
    "imagenet": "ImageNet",
    "stsb": "STS-B",
    "wnli": "WNLI",
    "qnli": "QNLI",
    "mrpc": "MRPC",
    "rte": "RTE",
    "sst2": "SST-2",
    "cola": "CoLA",
    "mnli": "MNLI",
    "qqp": "QQP",
    "squad": "SQuAD",
    "squad_proxy": "SQuAD-proxy",
}

# A task run on stand-in data (SQuAD's dev file split by article, `task.proxy_split`) is its own task key, so
# its numbers never share a cell, a column or a table with the real task's.
PROXY_TASK_SUFFIX = "_proxy"
# Tasks whose cells show a second recorded metric beside the reported one: (metric key, label).
SECONDARY_METRICS = {"squad": ("exact_match", "EM")}
# Tasks with tables of their own (the paper's Tables I-V are GLUE and image sets only): one per task key.
OWN_TABLE_TASKS = frozenset({"squad"})


def task_key(task: Mapping[str, Any]) -> str:
    """A record's task as the tables key it: its name, with PROXY_TASK_SUFFIX when it ran on a stand-in split."""
    name = str(task["name"])
    return name + PROXY_TASK_SUFFIX if task.get("proxy_split") else name


def _is_seven_pre_ablation(pruner: Mapping[str, Any]) -> bool:
    return pruner.get("name") == "seven_pre" and any(
        pruner.get(option, default) != default for option, default in SEVEN_PRE_DEFAULTS.items()
    )


def table_keys(record: Mapping[str, Any]) -> list[str]:
    """The tables a record feeds: every experiment that asked for it (``experiments``; a complete cell
    requested by a second table's sweep is tagged, not rerun), else the paper's design.

    CLIP (or its stand-in) pre-pruned or dense -> table1. Text models pre-pruned -> table2, dynamically
    pruned -> table3, dense -> both (the paper prints the same Full BERT-base line in each). SEVEN-pre
    score-function ablations -> table4 only, Lion fine-tuning -> table5 only: neither is the setup of
    Tables I-III, so they must not be averaged into them. A record matching no rule (e.g. CLIP with dynamic
    pruning) belongs to no table; it still appears in records.csv.
    """
    tags = list(record.get("experiments") or ([record["experiment"]] if record.get("experiment") else []))
    if tags:
        return list(dict.fromkeys(str(t) for t in tags))
    return design_tables(record)


def design_tables(record: Mapping[str, Any]) -> list[str]:
    """The paper tables whose setup a record ran, by the rules above, whatever sweep asked for it."""
    spec = record["spec"]
    pruner = spec["pruner"]
    if _is_seven_pre_ablation(pruner):
        return ["table4"]
    if (spec.get("trainer") or {}).get("optimizer") == "lion":
        return ["table5"]
    model, timing = spec["model"]["name"], pruner.get("timing")
    if spec["task"]["name"] in OWN_TABLE_TASKS:  # SQuAD: its own table (the stand-in split: another one)
        return [task_key(spec["task"])]
    if pruner.get("name") == "gmp":  # gradual magnitude is the paper's "Progressive" row of Tables I and II
        return ["table1"] if model in IMAGE_MODELS else ["table2"] if model in TEXT_MODELS else []
    if model in IMAGE_MODELS:
        return ["table1"] if timing in ("pre", "none") else []
    if model in TEXT_MODELS:
        keys = []
        if timing in ("pre", "none"):
            keys.append("table2")
        if timing in ("dyn", "none"):
            keys.append("table3")
        return keys
    return []


def method_key(record: Mapping[str, Any]) -> str:
    """The row a record fills, as a method key of baselines/README.md.

    Dense runs (timing "none") are "dense" whatever the pruner entry is called. A non-original variant
    (``platon[seven_repo]``) gets its own row. A SEVEN-pre ablation gets its
    non-default settings in brackets (``seven_pre[correction=m_only]``) rather than one of the paper's stripped
    variant labels, which cannot be matched reliably. Lion fine-tuning appends ``_lion`` (Table V's
    ``seven_pre_lion``).
    """
    spec = record["spec"]
    pruner = spec["pruner"]
    key = DENSE if pruner.get("timing") == "none" else str(pruner["name"])
    if _is_seven_pre_ablation(pruner):
        options = ",".join(
            f"{option}={pruner[option]}"
            for option, default in SEVEN_PRE_DEFAULTS.items()
            if pruner.get(option, default) != default
        )
        key = f"{key}[{options}]"
    changed = [f"{o}={pruner[o]}" for o, d in ROW_OPTIONS.get(key, {}).items() if pruner.get(o, d) != d]
    if changed:  # e.g. EarlyBird fine-tuned from the EB weights: not the published (rewound) row
        key = f"{key}[{','.join(changed)}]"
    variant = pruner.get("variant")
    if variant not in (None, "original"):  # e.g. the SEVEN repo's re-implementations: never the original's row
        key = f"{key}[{variant}]"
    if (spec.get("trainer") or {}).get("optimizer") == "lion":
        key += LION_SUFFIX
    return key


def is_dense(method: str) -> bool:
    return method.removesuffix(LION_SUFFIX) == DENSE


def table_order(key: str) -> tuple[int, str]:
    """Sort key of a table name: ``table2`` before ``table10``, other experiments after every table."""
    match = re.fullmatch(r"table(\d+)", key)
    return (int(match.group(1)), "") if match else (sys.maxsize, key)


def method_label(method: str, table: str | None = None) -> str:
    """The row label: the paper's name for the method in that table, else one built from the key."""
    table_labels = TABLE_METHOD_LABELS.get(table or "", {})
    if method in table_labels:
        return table_labels[method]
    if method in METHOD_LABELS:
        return METHOD_LABELS[method]
    if method.endswith(LION_SUFFIX):
        return f"{method_label(method.removesuffix(LION_SUFFIX), table)} (Lion)"
    base, bracket, options = method.partition("[")
    if bracket:
        return f"{method_label(base, table)} ({options.rstrip(']')})"
    return method


def row_label(method: str, standin: str, table: str | None = None) -> str:
    """Method label, plus ``[model]`` for a stand-in model so it is never read as the paper's model."""
    label = method_label(method, table)
    return f"{label} [{standin}]" if standin else label


def task_label(task: str) -> str:
    return TASK_LABELS.get(task, task.upper())


def column_label(task: str, sparsity_pct: float) -> str:
    """``RTE@60``: the paper's column for a task at a sparsity, in percent."""
    return f"{task_label(task)}@{sparsity_pct:g}"


POOLER_PRUNED = "pooler pruned"
DYNAMIC = "dynamic"
DYNAMIC_RECIPE = "seven_dyn"  # Table III's same-budget recipe: SEVEN-dyn's, for every dynamic method
OWN_RECIPE = "own recipe"


def trainer_changes(trainer: Mapping[str, Any]) -> list[str]:
    """``key=value`` for each trainer setting the user typed over the record's recipe (`trainer.epochs=12`):
    the record's ``overrides``, or, for a record written before it existed, every setting that differs from
    the named recipe (``?`` when that recipe is a pruner's own, whose values the record does not hold)."""
    if "overrides" in trainer:
        return [f"{key}={trainer.get(key)}" for key in trainer["overrides"]]
    base, _, changed = str(trainer.get("recipe") or "").partition("+")
    if not changed:
        return []
    if base not in RECIPES:
        return ["?"]
    recipe = {"max_steps": None, **RECIPES[base]}
    return [f"{key}={trainer.get(key)}" for key in TRAINER_KEYS if trainer.get(key, recipe[key]) != recipe[key]]


def trainer_setup(trainer: Mapping[str, Any]) -> str:
    """The recipe a record ran and what was typed over it (``bert_pre+epochs=12``): runs with the same setup
    share a dense reference."""
    return "+".join([str(trainer.get("recipe") or "").partition("+")[0], *trainer_changes(trainer)])


def run_variant(record: Mapping[str, Any]) -> str:
    """The setup a pruned record ran, as a column suffix, so that runs of different setups never share a
    column: "" for the proxy study's own (pre-pruning, pooler kept dense), "pooler pruned" for
    `model.prune_pooler=true` (the paper's prunable set, which the scan also sweeps), "dynamic" for Table III's
    dynamic pruning on SEVEN-dyn's recipe (another recipe and budget), "dynamic, own recipe" for a dynamic
    baseline on its own paper's recipe (`trainer.recipe=own`: PLATON's Adamax, movement's 3e-5 with warm-up;
    another "X recipe" for any other), then the trainer settings typed over the recipe (``epochs=12``: a
    budget-matched control, not another seed of the recipe's row), joined with ", ". Dense records get theirs
    from the runs they are the reference of (seven_bench.tables.proxy.proxy_frame)."""
    spec = record.get("spec") or {}
    parts = []
    if (spec.get("model") or {}).get("prune_pooler") is True:
        parts.append(POOLER_PRUNED)
    if design_tables(record) == ["table3"]:  # not gmp: the paper's "Progressive" is a Table II row
        parts.append(DYNAMIC)
        recipe = str((spec.get("trainer") or {}).get("recipe") or DYNAMIC_RECIPE).split("+")[0]
        if recipe != DYNAMIC_RECIPE:
            parts.append(OWN_RECIPE if recipe == (spec.get("pruner") or {}).get("name") else f"{recipe} recipe")
    parts.extend(trainer_changes(spec.get("trainer") or {}))
    return ", ".join(parts)


def is_trainer_change(part: str) -> bool:
    """Whether a part of a variant is a typed trainer setting (``epochs=12``) rather than a setup's name."""
    return "=" in part or part == "?"


def variant_parts(variant: str) -> set[str]:
    """The parts run_variant joined ("pooler pruned, epochs=12" -> {"pooler pruned", "epochs=12"}; "" -> none)."""
    return set(filter(None, variant.split(", ")))


def changes_trainer(variant: str) -> bool:
    """Whether a column's variant types trainer settings over its recipe: a budget-matched control runs the
    paper's cell on another budget, so the paper printed no number for it."""
    return any(map(is_trainer_change, variant_parts(variant)))
