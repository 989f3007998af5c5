"""Masked-language-model continued pre-training for BERT-family encoders (Information Deletion's pruning phase,
Gordon et al. 2020): the MLM model around the cell's own encoder, the unlabelled text it reads, BERT's 15% /
80-10-10 masking, and one training phase.

The MLM model shares the encoder's Parameters with the cell's classification model (no copy), so a mask cut on
the cell's prunable tensors during pre-training is the mask the fine-tune inherits, and the classifier head
stays the fresh one the cell built."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from seven_bench.errors import NanLossError, UserError
from seven_bench.train import build_optimizer, build_scheduler, clip_stepped_gradients_

Rows = Iterator[dict[str, list[int]]]
TEXT_KEYS = ("input_ids", "token_type_ids")


def bert_encoder(model: nn.Module) -> nn.Module:
    """The BertModel inside a BERT-family task model (HF `base_model`), or a one-line error."""
    encoder = getattr(model, "base_model", None)
    if encoder is None or not hasattr(encoder, "embeddings") or not hasattr(encoder.embeddings, "word_embeddings"):
        raise UserError("masked-language-model pre-training needs a BERT-family text model (bert, minilm, tiny_bert)")
    return encoder


@dataclass
class MlmHead:
    module: nn.Module
    pretrained: bool  # False: a fresh transform, its decoder tied to the word embeddings (a deviation)
    source: str


def mlm_head(model: nn.Module) -> MlmHead:
    """The checkpoint's own MLM head (`cls.predictions`: transform + bias, decoder tied to the word embeddings)
    when it ships one (bert-base-uncased does); else a freshly initialised BERT head (all-MiniLM-L6-v2 ships none,
    the tiny random model has no checkpoint). The decoder is tied to the encoder's word embeddings either way, as
    BERT ties them, so pruning the embeddings prunes the output projection too."""
    from transformers import BertForMaskedLM

    config = model.config
    source = str(getattr(config, "_name_or_path", "") or "")
    pretrained = False
    if source:
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the missing-head report: the record states it in one line instead
        try:
            mlm, info = BertForMaskedLM.from_pretrained(source, output_loading_info=True)
        finally:
            hf_logging.set_verbosity(verbosity)
        pretrained = not any(str(k).startswith("cls.predictions.transform") for k in info.get("missing_keys", ()))
    else:
        mlm = BertForMaskedLM(config)
    head = mlm.cls
    head.predictions.decoder.weight = bert_encoder(model).embeddings.word_embeddings.weight
    return MlmHead(head, pretrained, source or "random init")


class MlmModel(nn.Module):
    """Encoder (shared with the task model) + MLM head. The head runs only at the masked positions, as BERT's
    `gather_indexes` does: the same loss at a fraction of the vocabulary projection's cost."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, **inputs).last_hidden_state
        picked = labels != -100
        if not bool(picked.any()):  # no masked token in this batch: a zero loss that keeps the graph
            return hidden.sum() * 0.0
        logits = self.head(hidden[picked])
        return F.cross_entropy(logits.float(), labels[picked])


# ------------------------------------------------------------------------------------------------ corpus
@dataclass(frozen=True)
class Corpus:
    """Where the unlabelled text comes from: `task` (the cell's own training sentences), a text file (one
    passage per line), or `hub:<dataset>[:<config>]` (its train split's `text` column)."""

    kind: str  # task | file | hub
    name: str = ""
    config: str | None = None

    @staticmethod
    def parse(value: str) -> "Corpus":
        value = str(value)
        if value == "task":
            return Corpus("task")
        if value.startswith("hub:"):
            name, _, config = value[4:].partition(":")
            if not name:
                raise UserError("pruner.corpus=hub: names no dataset: pass pruner.corpus=hub:<dataset>[:<config>]")
            return Corpus("hub", name, config or None)
        path = Path(value).expanduser()
        if not path.is_file():
            raise UserError(
                f"pruner.corpus={value} is no file: pass pruner.corpus=task (the task's training sentences), "
                "a text file (one passage per line) or hub:<dataset>[:<config>]"
            )
        return Corpus("file", str(path.resolve()))

    def identity(self) -> dict[str, Any]:
        """What names the text in an artifact key (a file by its content, not only its path)."""
        if self.kind == "file":
            import hashlib

            data = Path(self.name).read_bytes()
            return {"kind": "file", "path": self.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        return {"kind": self.kind, "name": self.name, "config": self.config}


def task_rows(batches: Iterator[dict[str, Any]], max_length: int) -> Rows:
    """Rows of the task's training stream (its tokenized sentences, pairs with their segment ids), padding
    stripped, truncated to max_length; labels and any other key are dropped."""
    for batch in batches:
        ids, attention = batch["input_ids"].cpu(), batch.get("attention_mask")
        keep = torch.ones_like(ids, dtype=torch.bool) if attention is None else attention.cpu().bool()
        types = batch.get("token_type_ids")
        for row in range(ids.shape[0]):
            out = {"input_ids": ids[row][keep[row]][:max_length].tolist()}
            if types is not None:
                out["token_type_ids"] = types[row].cpu()[keep[row]][:max_length].tolist()
            yield out


def text_rows(lines: list[str], tokenizer: Any, max_length: int, seed: int) -> Rows:
    """Tokenized passages in a seeded shuffled order, epoch after epoch."""
    order = random.Random(seed)
    encoded = [tokenizer(line, truncation=True, max_length=max_length) for line in lines]
    while True:
        indices = list(range(len(encoded)))
        order.shuffle(indices)
        for index in indices:
            yield {k: list(encoded[index][k]) for k in TEXT_KEYS if k in encoded[index]}


def corpus_lines(corpus: Corpus) -> list[str]:
    if corpus.kind == "file":
        lines = [line.strip() for line in Path(corpus.name).read_text(encoding="utf-8").splitlines()]
    else:
        try:
            from datasets import load_dataset

            data = load_dataset(corpus.name, corpus.config, split="train")
        except Exception as err:  # noqa: BLE001  (offline, unknown name: one line that says which)
            raise UserError(f"pruner.corpus=hub:{corpus.name}: cannot load its train split ({err})") from None
        if "text" not in data.column_names:
            raise UserError(f"pruner.corpus=hub:{corpus.name} has no 'text' column (it has {data.column_names})")
        lines = [str(text).strip() for text in data["text"]]
    lines = [line for line in lines if line]
    if not lines:
        raise UserError(f"pruner.corpus={corpus.name} holds no text")
    return lines


def corpus_rows(corpus: Corpus, batches: Iterator[dict[str, Any]], tokenizer: Any, max_length: int, seed: int) -> Rows:
    if corpus.kind == "task":
        return task_rows(batches, max_length)
    return text_rows(corpus_lines(corpus), tokenizer, max_length, seed)


def mlm_batches(
    rows: Rows, tokenizer: Any, batch_size: int, probability: float, seed: int, device: torch.device
) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of `batch_size` rows, padded, masked by transformers' DataCollatorForLanguageModeling (15% of the
    non-special tokens chosen; of those 80% [MASK], 10% a random token, 10% unchanged; labels -100 elsewhere) with
    its own seeded generator, so the masking does not depend on (or disturb) the global random state."""
    from transformers import DataCollatorForLanguageModeling

    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=probability, seed=seed)
    while True:
        examples = [next(rows) for _ in range(batch_size)]
        yield {k: v.to(device) for k, v in collator(examples).items()}


# ------------------------------------------------------------------------------------------------ training
@dataclass
class PhaseLog:
    steps: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)  # every step's loss (a few floats per step)

    def summary(self) -> dict[str, Any]:
        head, tail = self.losses[:10], self.losses[-10:]
        return {
            "steps": self.steps,
            "seconds": self.seconds,
            "loss_first10": sum(head) / len(head) if head else None,
            "loss_last10": sum(tail) / len(tail) if tail else None,
        }


def train_mlm(
    model: MlmModel,
    batches: Iterator[dict[str, torch.Tensor]],
    steps: int,
    settings: dict[str, Any],
    after_step: Callable[[int], None] | None = None,
    progress: bool = False,
    desc: str = "mlm",
) -> PhaseLog:
    """`steps` optimizer steps of MLM with a fresh optimizer and schedule (BERT's run_pretraining: AdamW, linear
    warm-up then linear decay over the phase, global-norm clipping); `after_step(step)` runs right after each
    optimizer step (the magnitude cut and the mask re-applied)."""
    log = PhaseLog()
    if steps <= 0:
        return log
    optimizer = build_optimizer(model, [], settings)
    scheduler = build_scheduler(optimizer, settings, steps)
    model.train()
    started = time.perf_counter()
    bar = tqdm(total=steps, desc=desc, disable=not progress, dynamic_ncols=True, leave=False)
    for step in range(steps):
        loss = model(**next(batches))
        if not torch.isfinite(loss.detach()):
            raise NanLossError(step)
        loss.backward()
        if settings.get("max_grad_norm"):
            clip_stepped_gradients_(optimizer, float(settings["max_grad_norm"]))
        optimizer.step()
        scheduler.step()
        if after_step is not None:
            after_step(step)
        optimizer.zero_grad(set_to_none=True)
        log.losses.append(float(loss.detach()))
        bar.update(1)
    bar.close()
    log.steps, log.seconds = steps, time.perf_counter() - started
    return log
