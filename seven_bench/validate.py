"""Every key of a composed config checked before anything loads: against the keys of conf/config.yaml and
of the chosen conf/<group>/<name>.yaml (Hydra's `+key=value` adds any key, which the run would then
silently ignore), and against a small schema of allowed values per group (a value Python would coerce,
like seed=1.5 -> 1, or one that fails only after the model loaded, like trainer.optimizer=foo). Each
failure is one UserError line that names the key and says what it takes."""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from seven_bench.conf import CONF_DIR  # noqa: E402
from seven_bench.errors import UserError

# Set by the CLI in a sweep: the `group.option` keys it added to every job with `++` (cli.force_group_options).
SWEPT_KEY = "swept_options"
_NOT_KEYS = ("defaults", "hydra")
GROUPS = ("model", "task", "pruner")


@dataclass(frozen=True)
class Rule:
    """A predicate on a value and the words that say which values pass."""

    ok: Callable[[Any], bool]
    expect: str


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def integer(low: int, high: int | None = None, null: bool = False) -> Rule:
    span = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    return Rule(
        lambda v: (null and v is None) or (_is_int(v) and low <= v and (high is None or v <= high)),
        span + (" or null" if null else ""),
    )


def number(low: float, positive: bool = False, null: bool = False) -> Rule:
    bound = f"> {low}" if positive else f">= {low}"
    return Rule(
        lambda v: (null and v is None) or (_is_number(v) and (v > low if positive else v >= low)),
        f"a finite number {bound}" + (" or null" if null else ""),
    )


def one_of(*choices: str, null: bool = False) -> Rule:
    return Rule(
        lambda v: (null and v is None) or v in choices, "one of " + ", ".join(choices) + (" or null" if null else "")
    )


def boolean(null: bool = False) -> Rule:
    return Rule(lambda v: (null and v is None) or isinstance(v, bool), "true or false" + (" or null" if null else ""))


def text(null: bool = False) -> Rule:
    return Rule(
        lambda v: (null and v is None) or (isinstance(v, str) and v != ""),
        "a non-empty string" + (" or null" if null else ""),
    )


BETAS = Rule(
    lambda v: (
        v is None or (isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_number(b) and 0 <= b < 1 for b in v))
    ),
    "two numbers in [0, 1), e.g. [0.9,0.999], or null",
)
TEMPLATES = Rule(
    lambda v: v is None or (isinstance(v, list) and bool(v) and all(isinstance(t, str) and "{}" in t for t in v)),
    'null or a list of format strings with {}, e.g. ["a photo of a {}."]',
)
LR_SCHEDULES = ("constant", "linear", "cosine")  # what train.build_scheduler accepts

TOP = {
    "seed": integer(0, 2**32 - 1),
    "results_dir": text(),
    "force": boolean(),
    "experiment": text(null=True),
    "progress": boolean(),
    "export": boolean(),
}
_SIZE = integer(1, null=True)  # null: the model's default
MODEL = {
    "name": text(),
    "hub_id": text(),
    "checkpoint": text(null=True),
    "prune_pooler": boolean(),
    "hidden_size": _SIZE,
    "num_layers": _SIZE,
    "num_heads": _SIZE,
    "intermediate_size": _SIZE,
    "arch": text(),
    "pretrained": text(null=True),
    "quick_gelu": boolean(null=True),
    "templates": TEMPLATES,
    "image_size": _SIZE,
    "patch_size": _SIZE,
    "width": _SIZE,
    "layers": _SIZE,
    "heads": _SIZE,
    "embed_dim": _SIZE,
    "text_width": _SIZE,
    "text_layers": _SIZE,
    "text_heads": _SIZE,
    "init_seed": integer(0, null=True),
}
# max_length: a sentence pair's special tokens take 3 of it; the text models' position table holds 512.
TASK = {
    "name": text(),
    "max_length": integer(4, 512),
    "max_train_examples": integer(1, null=True),
    "max_eval_examples": integer(1, null=True),
    "image_folder": text(null=True),
    "doc_stride": integer(1),  # SQuAD windows (tasks/squad.py checks that they fit max_length)
    "max_query_length": integer(1),
    "n_best": integer(1),
    "max_answer_length": integer(1),
    "proxy_split": one_of("by_article", null=True),
}


def trainer_rules() -> dict[str, Rule]:
    """Rules for the resolved trainer settings (recipe, the pruner's own recipe and the user's values)."""
    from seven_bench.train import OPTIMIZERS

    return {
        "optimizer": one_of(*OPTIMIZERS),
        "lr": number(0, positive=True),
        "weight_decay": number(0, null=True),
        "betas": BETAS,
        "batch_size": integer(1),
        "eval_batch_size": integer(1),
        "epochs": integer(1),
        "max_steps": integer(1, null=True),
        "warmup_steps": integer(0, null=True),
        "lr_schedule": one_of(*LR_SCHEDULES, null=True),
        "max_grad_norm": number(0, positive=True, null=True),
        "device": text(),
        "num_workers": integer(0),
        "checkpoint_every": Rule(
            lambda v: v in (None, False, "epoch") or _is_int(v) and v >= 0, "epoch, a number of steps >= 0, or null"
        ),
        "keep_checkpoints": boolean(),
    }


def _show(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return str(value)


def check_values(prefix: str, values: Mapping[str, Any], rules: Mapping[str, Rule]) -> None:
    """Each key of `values` that has a rule must pass it; keys without a rule are not checked here."""
    for key, value in values.items():
        rule = rules.get(key)
        if rule is not None and not rule.ok(value):
            raise UserError(f"{prefix}{key}={_show(value)} is invalid: pass {prefix}{key}=<{rule.expect}>")


def check_model(cfg: Mapping[str, Any]) -> None:
    """The model's values, and the widths that attention heads must divide (else the build fails late)."""
    check_values("model.", cfg, MODEL)
    for width, heads in (("hidden_size", "num_heads"), ("width", "heads"), ("text_width", "text_heads")):
        if cfg.get(width) and cfg.get(heads) and cfg[width] % cfg[heads]:
            raise UserError(
                f"model.{width}={cfg[width]} is not divisible by model.{heads}={cfg[heads]}: "
                f"pass a {width} that is a multiple of {heads}"
            )


# ------------------------------------------------------------------------------------- unknown keys
@lru_cache(maxsize=None)
def _yaml_keys(path: Path) -> frozenset[str] | None:
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text()) or {}
    keys = {k for k in data if k not in _NOT_KEYS}
    for entry in data.get("defaults") or []:  # `- /pruner_tables/b3@paper_by_task: window_paper` adds paper_by_task
        for target in entry if isinstance(entry, dict) else ():
            if "@" in str(target):
                keys.add(str(target).split("@", 1)[1].split(".")[0])
    return frozenset(keys)


def group_keys(group: str, name: str) -> frozenset[str] | None:
    """The keys of conf/<group>/<name>.yaml (None when there is no such file)."""
    return _yaml_keys(CONF_DIR / group / f"{name}.yaml")


@lru_cache(maxsize=None)
def top_level_keys() -> frozenset[str]:
    """conf/config.yaml's keys, its groups, the keys experiment configs add at the top (ablation, ...), and
    the CLI's own."""
    keys = set(_yaml_keys(CONF_DIR / "config.yaml") or ())
    for path in (CONF_DIR / "experiment").rglob("*.yaml"):
        keys |= _yaml_keys(path) or set()
    return frozenset(keys | set(GROUPS) | {SWEPT_KEY})


def trainer_keys() -> frozenset[str]:
    data = yaml.safe_load((CONF_DIR / "config.yaml").read_text()) or {}
    return frozenset(data.get("trainer") or ())


def _refuse_unknown(prefix: str, keys: Any, known: frozenset[str], owner: str) -> None:
    unknown = sorted(set(keys) - known)
    if unknown:
        raise UserError(
            f"unknown key {prefix}{unknown[0]}: {owner} has {', '.join(sorted(known - {SWEPT_KEY}))} "
            f"(check the spelling, or drop the key)"
        )


def drop_swept_options(raw: dict[str, Any]) -> None:
    """A sweep's `pruner.x=v` beside `pruner=a,b` reaches every job (`++`); keep it only in the groups whose
    own yaml has the key, so a pruner without the option keeps its cell (and its hash). In place."""
    for key in raw.pop(SWEPT_KEY, None) or ():
        group, _, option = str(key).partition(".")
        option = option.split(".")[0]
        section = raw.get(group)
        if group in GROUPS and isinstance(section, dict):
            known = group_keys(group, str(section.get("name")))
            if known is not None and option not in known:
                section.pop(option, None)


def check_keys(raw: Mapping[str, Any]) -> None:
    """No key the configs do not define: at the top, in trainer, and in model/task/pruner as their yaml has them."""
    _refuse_unknown("", raw, top_level_keys(), "the config")
    _refuse_unknown("trainer.", raw.get("trainer") or {}, trainer_keys(), "trainer")
    for group in GROUPS:
        section = raw.get(group) or {}
        known = group_keys(group, str(section.get("name")))
        if known is not None:
            _refuse_unknown(f"{group}.", section, known, f"{group}={section.get('name')}")


# ------------------------------------------------------------------------------- places and devices
def check_results_dir(value: str) -> None:
    """The records' folder must be creatable and writable now, not after a cell (or a sweep) has computed.
    Creates nothing: walks up to the first existing folder and checks it."""
    probe = Path(value).expanduser() / "runs"
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(
            f"results_dir={value} cannot be a folder: {probe} is a file; pass results_dir=<a writable folder>"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(
            f"results_dir={value} is not writable ({probe} is read-only here); pass results_dir=<a writable folder>"
        )


def check_device(name: str) -> None:
    """`auto` or a torch device string whose backend is present (and, with an index, has that many devices)."""
    if name == "auto":
        return
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UserError(
            f"trainer.device={name} is not a torch device: "
            "pass trainer.device=auto, cpu or <type>:<index> as torch names it"
        ) from None
    module = getattr(torch, device.type, None)
    backend = getattr(torch.backends, device.type, None)
    available = getattr(module, "is_available", None) or getattr(backend, "is_available", None)
    if available is not None and not available():
        raise UserError(
            f"trainer.device={name}: no {device.type} device is available here; pass trainer.device=auto (or cpu)"
        )
    count = getattr(module, "device_count", None)
    if device.index is not None and count is not None and device.index >= count():
        raise UserError(
            f"trainer.device={name}: this machine has {count()} {device.type} device(s), numbered from 0; "
            f"pass trainer.device={device.type}:0 or auto"
        )


def check_trainer(settings: Mapping[str, Any]) -> None:
    """The resolved trainer settings: values, the device, and the optimizer's package."""
    check_values("trainer.", settings, trainer_rules())
    check_device(str(settings["device"]))
    if settings["optimizer"] == "lion" and importlib.util.find_spec("lion_pytorch") is None:
        raise UserError("trainer.optimizer=lion needs the lion-pytorch package: pip install lion-pytorch")
