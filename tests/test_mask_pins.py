"""Pinned masks: every pruner's final mask on tiny_bert, synthetic batches and a fixed seed, as a digest.

Taken after the fidelity fixes and before the pruning core was reshaped (issue 10): a refactor must leave
every digest unchanged, i.e. bit-identical masks. A change of what a method computes must change its pin
here, in the same commit, with the reason."""

from __future__ import annotations

import hashlib
from typing import Any, Iterator

import pytest
import torch

from seven_bench.models import MODELS
from seven_bench.pruning.base import PruneContext
from seven_bench.pruning.registry import PRUNERS
from seven_bench.spec import resolve_pruner
from seven_bench.tasks.base import TaskInfo
from seven_bench.train import fit

TINY = {
    "name": "tiny_bert",
    "hidden_size": 32,
    "num_layers": 2,
    "num_heads": 2,
    "intermediate_size": 64,
    "prune_pooler": True,
}
STEPS = 8
SETTINGS = {
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "lr_schedule": "constant",
    "warmup_steps": 0,
    "epochs": 1,
    "max_grad_norm": 1.0,
}
# Per pruner: hyperparameters that make the method do something within 8 steps of a 2-layer model.
SMALL: dict[str, dict[str, Any]] = {
    "random": {},
    "magnitude": {},
    "snip": {"num_batches": 2},
    "grasp": {"samples_per_class": 3},
    "iter_snip": {"num_steps": 3, "num_batches": 1},
    "force": {"num_steps": 3, "num_batches": 1},
    "seven_pre": {"num_batches": 4},
    "seven_dyn": {"start": 1, "window": 6},
    "platon": {"warmup_steps": 1, "final_warmup": 2, "delta_t": 2},
    "platon_seven_repo": {"variant": "seven_repo", "start": 1, "window": 6},
    "movement": {"warmup_steps": 1, "final_warmup": 2, "scores_lr": 0.1},
    "movement_seven_repo": {"variant": "seven_repo", "start": 1, "window": 6},
    "soft_movement": {
        "warmup_steps": 1,
        "final_warmup": 2,
        "final_threshold": 0.5,
        "final_lambda": 0,
        "scores_lr": 0.1,
    },
    "soft_movement_seven_repo": {"variant": "seven_repo", "start": 1, "window": 6},
    "gmp": {"warmup_steps": 1, "final_warmup": 2},
}
PINS = {
    "random": "fa9f6c24aa843857",
    "magnitude": "9d382c4bcbf65b6d",
    "snip": "faa884d2dc2efe8e",
    "grasp": "b747c2611595b903",
    "iter_snip": "360d6535d88b09e0",
    "force": "5e423ac49b88cc6f",
    "seven_pre": "b73da2e0e6bc1260",
    "seven_dyn": "2940c5b9fc7928c6",
    "platon": "7a54149d290faafa",
    "platon_seven_repo": "0c6cadb227d59bf4",
    "movement": "62293ba684fdb8de",
    "movement_seven_repo": "f83b48f5ccdaa249",
    "soft_movement": "302e313a4dee0330",
    # the penalty moves the weights a little, not the |W g| ranking on 8 steps of this model
    "soft_movement_seven_repo": "f83b48f5ccdaa249",
    "gmp": "037bd46ce86edd00",
}


def _batches(seed: int) -> Iterator[dict[str, Any]]:
    gen = torch.Generator().manual_seed(seed)
    while True:
        yield {
            "input_ids": torch.randint(5, 1000, (8, 16), generator=gen),
            "attention_mask": torch.ones(8, 16, dtype=torch.long),
            "labels": torch.randint(0, 2, (8,), generator=gen),
        }


def _pruner_config(key: str) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from seven_bench.conf import compose_config

    name = key.split("_seven_repo")[0]
    cfg = compose_config([f"pruner={name}"])
    plain = OmegaConf.to_container(cfg.pruner, resolve=True)
    plain.update(SMALL[key])
    return resolve_pruner(plain, "mrpc")[0]


def mask_digest(key: str) -> str:
    torch.manual_seed(0)
    info = TaskInfo(name="mrpc", modality="text", num_labels=2, reported_metric="accuracy")
    bundle = MODELS.get("tiny_bert").build(TINY, info, torch.device("cpu"))
    cfg = _pruner_config(key)
    pruner = PRUNERS.get(cfg["name"]).build(cfg, 0.5, 0)
    ctx = PruneContext(bundle.model, bundle.prunable, _batches(1), 2, STEPS, 0)
    pruner.prepare(ctx)
    from seven_bench.pruning.base import apply_masks_

    apply_masks_(bundle.prunable, pruner.masks)
    train = _batches(2)
    fit(ctx, pruner, [next(train) for _ in range(STEPS)], SETTINGS, lambda: {}, progress=False)
    digest = hashlib.sha256()
    for name, param in bundle.prunable.items():
        kept = (param.detach() != 0) if pruner.masks is None else pruner.masks[name]
        digest.update(name.encode())
        digest.update(kept.to(torch.uint8).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@pytest.mark.parametrize("key", list(SMALL))
def test_mask_is_pinned(key):
    assert mask_digest(key) == PINS[key]
