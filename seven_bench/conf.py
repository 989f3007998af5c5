"""The config folder and its composition, in one place: the CLI, prepare, bench, demo and the tests all
compose cells the same way (and none of them imports the CLI to find the folder)."""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose_config(overrides: Sequence[str] = (), return_hydra_config: bool = False) -> Any:
    """The composed `config.yaml` with command-line style overrides, as `seven-bench key=value ...` sees it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=return_hydra_config)


# Keys of a pruner yaml that steer resolution (per-task tables, trainer overlays), not constructor arguments.
PRUNER_META_KEYS = ("defaults", "by_task", "paper_by_task", "trainer")


@lru_cache(maxsize=None)
def _pruner_yaml(name: str) -> tuple[tuple[str, Any], ...]:
    from omegaconf import OmegaConf

    path = CONF_DIR / "pruner" / f"{name}.yaml"
    if not path.is_file():
        return ()
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return tuple((k, v) for k, v in raw.items() if k not in PRUNER_META_KEYS)  # type: ignore[union-attr]


def pruner_defaults(name: str) -> dict[str, Any]:
    """The defaults of pruner `name`, read from conf/pruner/<name>.yaml: the only place they are written.
    A pruner built from a partial config (a test, a notebook) gets the same values as a composed cell."""
    return copy.deepcopy(dict(_pruner_yaml(name)))
