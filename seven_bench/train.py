"""The fine-tuning loop shared by every cell: masks re-applied after every optimizer step, dyn pruners
called right after the step, evaluation each epoch, a NaN loss stops the cell with its step."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from seven_bench.checkpoints import Checkpointer, loader_generator, pack, unpack
from seven_bench.errors import NanLossError, UserError
from seven_bench.pruning.base import (
    PruneContext,
    Pruner,
    apply_masks_,
    batch_targets,
    double_backward_kernels,
    forward_logits,
    task_loss,
)

OPTIMIZERS = ("adamw", "adam", "adamax", "lion", "sgd")


def build_optimizer(
    model: nn.Module, extra_groups: list[dict[str, Any]], settings: dict[str, Any]
) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": params}, *extra_groups]
    name, lr, wd = settings["optimizer"], float(settings["lr"]), float(settings.get("weight_decay") or 0.0)
    betas = tuple(settings.get("betas") or (0.9, 0.999))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=1e-8, weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=betas, eps=1e-8, weight_decay=wd)
    if name == "adamax":
        return torch.optim.Adamax(groups, lr=lr, betas=betas, eps=1e-8, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=wd)
    if name == "lion":
        from lion_pytorch import Lion

        return Lion(groups, lr=lr, betas=betas, weight_decay=wd)
    raise UserError(f"unknown trainer.optimizer '{name}': choose one of {', '.join(OPTIMIZERS)}")


def build_scheduler(optimizer: torch.optim.Optimizer, settings: dict[str, Any], total_steps: int) -> Any:
    from transformers import get_scheduler

    kind = settings.get("lr_schedule") or "constant"
    names = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}
    if kind not in names:
        raise UserError(f"unknown trainer.lr_schedule '{kind}': choose constant, linear or cosine")
    return get_scheduler(
        names[kind], optimizer, num_warmup_steps=int(settings.get("warmup_steps") or 0), num_training_steps=total_steps
    )


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


@dataclass
class FitResult:
    per_epoch: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    eval_seconds: float = 0.0


def clip_stepped_gradients_(optimizer: torch.optim.Optimizer, max_norm: float) -> torch.Tensor:
    """Clip the gradients of everything the optimizer steps, together, to one total norm. Movement
    pruning's original clips `model.parameters()`, which holds its mask scores (they are MaskedLinear
    parameters there); here the scores live in their own optimizer group, so clipping only the model
    would leave them unclipped (kept sets IoU 0.49 at clip 0.05)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    return torch.nn.utils.clip_grad_norm_(params, max_norm)


def train_step(
    ctx: PruneContext,
    pruner: Pruner,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    batch: dict[str, Any],
    step: int,
    max_grad_norm: float | None,
) -> torch.Tensor:
    """One optimizer step with pruning: loss (+ the pruner's regulariser), backward, clip, step, the dyn
    pruner's update while .grad still holds this step's gradient, masks re-applied. Returns the loss."""
    with double_backward_kernels() if pruner.second_order else contextlib.nullcontext():
        loss = task_loss(forward_logits(ctx.model, batch), batch_targets(batch), ctx.num_labels)
        ctx.step_loss = loss
        extra = pruner.extra_loss(ctx)
        ctx.step_loss = None
    if extra is not None:
        loss = loss + extra
    if not torch.isfinite(loss.detach()):
        raise NanLossError(step)
    loss.backward()
    if max_grad_norm:
        clip_stepped_gradients_(optimizer, float(max_grad_norm))
    optimizer.step()
    scheduler.step()
    pruner.after_optimizer_step(step, ctx)
    apply_masks_(ctx.prunable, pruner.masks)
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def fit(
    ctx: PruneContext,
    pruner: Pruner,
    train_loader: Iterable[dict[str, Any]],
    settings: dict[str, Any],
    evaluate: Callable[[], dict[str, dict[str, float]]],
    progress: bool = True,
    checkpointer: Checkpointer | None = None,
) -> FitResult:
    """Train for settings.epochs (capped at ctx.total_steps optimizer steps), evaluating each epoch. With a
    `checkpointer`, resume from its checkpoint if one exists (skipping the batches of the epoch already
    consumed) and write one every `checkpointer.every_steps` steps and at every epoch's end."""
    model, device = ctx.model, ctx.device
    optimizer = build_optimizer(model, pruner.param_groups(), settings)
    scheduler = build_scheduler(optimizer, settings, ctx.total_steps)
    result = FitResult()
    started = time.perf_counter()
    step, first_epoch, skip = 0, 1, 0
    generator = loader_generator(train_loader)
    resumed = checkpointer.load() if checkpointer is not None else None
    if resumed is not None:
        unpack(resumed, model, optimizer, scheduler, pruner, device)
        step, first_epoch, skip = resumed["step"], resumed["epoch"], resumed["batches_done"]
        result.per_epoch = list(resumed["per_epoch"])
        if generator is not None and resumed.get("generator") is not None:
            generator.set_state(resumed["generator"])

    def save(epoch: int, batches_done: int, shuffle: torch.Tensor | None) -> None:
        assert checkpointer is not None
        position = dict(step=step, epoch=epoch, batches_done=batches_done, generator=shuffle)
        checkpointer.save(pack(model, optimizer, scheduler, pruner, per_epoch=result.per_epoch, **position))

    bar = tqdm(total=ctx.total_steps, initial=step, desc="fine-tune", disable=not progress, dynamic_ncols=True)
    for epoch in range(first_epoch, int(settings["epochs"]) + 1):
        model.train()
        epoch_generator = generator.get_state() if generator is not None else None  # this epoch's shuffle
        for done, batch in enumerate(train_loader, start=1):
            if done <= skip:  # consumed before the checkpoint this run resumed from
                continue
            loss = train_step(
                ctx, pruner, optimizer, scheduler, to_device(batch, device), step, settings.get("max_grad_norm")
            )
            step += 1
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(epoch=epoch, loss=f"{loss.item():.4f}")
            if step >= ctx.total_steps:
                break
            if checkpointer is not None and checkpointer.due(step) and done < len(train_loader):  # type: ignore[arg-type]
                save(epoch, done, epoch_generator)
        skip = 0
        eval_start = time.perf_counter()
        metrics = evaluate()
        result.per_epoch.append({"epoch": epoch, "step": step, **metrics})
        result.eval_seconds += time.perf_counter() - eval_start
        if progress:
            shown = "; ".join(
                f"{split} " + ", ".join(f"{k} {v:.4f}" for k, v in m.items()) for split, m in metrics.items()
            )
            bar.write(f"epoch {epoch} (step {step}): {shown}")
        if step >= ctx.total_steps:
            break
        if checkpointer is not None and checkpointer.every_steps and epoch < int(settings["epochs"]):
            # the epoch's end, its metrics included: a resumed run starts the next epoch
            save(epoch + 1, 0, generator.get_state() if generator is not None else None)
    bar.close()
    result.steps = step
    result.seconds = time.perf_counter() - started - result.eval_seconds
    return result


def run_steps(
    ctx: PruneContext,
    n_steps: int,
    settings: dict[str, Any] | None = None,
    masks: Any = None,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
    extra_groups: list[dict[str, Any]] | None = None,
    desc: str = "train",
    batches: Iterator[dict[str, Any]] | None = None,
    schedule_steps: int | None = None,
) -> int:
    """Train `ctx.model` for n_steps on `ctx.batches` with a fresh optimizer and schedule built from
    `settings` (default: the cell's), re-applying `masks` (a dict name -> bool tensor, or None: no mask)
    after each step, calling `on_step(step, loss)` after it. For pruners that train inside `prepare` (a
    lottery round, an early-bird search, a weak ISP copy): the same step as the fine-tune, without its
    evaluation. `batches` replaces `ctx.batches`; `schedule_steps` lets the learning-rate schedule span more
    steps than this call runs (BERT-Tickets' schedule spans all IMP rounds). Returns the steps taken."""
    settings = dict(settings if settings is not None else ctx.settings)
    stream = batches if batches is not None else ctx.batches
    optimizer = build_optimizer(ctx.model, list(extra_groups or []), settings)
    scheduler = build_scheduler(optimizer, settings, schedule_steps or n_steps)
    fixed = _FixedMasks(masks)
    ctx.model.train()
    bar = tqdm(total=n_steps, desc=desc, disable=not ctx.progress, dynamic_ncols=True, leave=False)
    for step in range(n_steps):
        loss = train_step(ctx, fixed, optimizer, scheduler, next(stream), step, settings.get("max_grad_norm"))
        if on_step is not None:
            on_step(step, loss)
        bar.update(1)
    bar.close()
    return n_steps


class _FixedMasks(Pruner):
    """A mask held fixed during `run_steps` (timing none: no hooks of its own)."""

    def __init__(self, masks: Any):
        super().__init__(1.0)
        self.masks = masks
