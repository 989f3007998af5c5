"""Config -> pruner object with no renaming: a pruner yaml's keys are its constructor's keyword arguments."""

from __future__ import annotations

import inspect
from typing import Any, Mapping


def from_config(cls: type, cfg: Mapping[str, Any], *leading: Any, **fixed: Any) -> Any:
    """`cls(*leading, **fixed, **{every config key cls's constructor names})`. The yaml is the one source of
    the defaults (`conf.pruner_defaults` fills a partial config before this runs), so a constructor's own
    defaults only serve direct use in code; `fixed` holds what the builder derives (a resolved count rule).
    Keys the constructor does not name belong to another variant of the method (e.g. platon's seven_repo
    window) or to resolution (name, timing) and are left out."""
    params = list(inspect.signature(cls).parameters)
    positional = set(params[: len(leading)])
    taken = {k: v for k, v in cfg.items() if k in params and k not in fixed and k not in positional}
    return cls(*leading, **taken, **fixed)
