"""The config folder and its composition, in one place: the CLI, prepare, bench, demo and the tests all
compose cells the same way (and none of them imports the CLI to find the folder)."""

from __future__ import annotations

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
