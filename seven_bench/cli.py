"""`seven-bench key=value ...`: one cell (or, with -m, a sweep of cells) through Hydra."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ("model", "task", "pruner")
log = logging.getLogger("seven_bench")


def _fail(message: str) -> None:
    print(f"seven-bench: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_group_choices(argv: list[str], conf_dir: Path = CONF_DIR) -> None:
    """Unknown model/task/pruner names stop here with one line, before Hydra composes anything
    (Hydra's own message spans several lines)."""
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+")
        if key not in GROUPS or "(" in value:
            continue
        valid = sorted(p.stem for p in (conf_dir / key).glob("*.yaml"))
        for choice in value.split(","):
            if choice not in valid:
                _fail(f"unknown {key} '{choice}': choose one of {', '.join(valid)}")


def force_group_options(argv: list[str], conf_dir: Path = CONF_DIR) -> list[str]:
    """In a sweep, `pruner.fit_schedule=true` beside `pruner=a,b` is checked by Hydra against the default
    group option (dense), which lacks the key; `++` (set, adding where missing) lets each job resolve it
    against its own pruner/model/task. A key no option of the group has is still refused, in one line."""
    if not {"-m", "--multirun"} & set(argv):
        return argv
    import yaml

    out = []
    for arg in argv:
        key = arg.split("=", 1)[0]
        group, _, option = key.partition(".")
        if "=" not in arg or arg.startswith(("+", "~", "-")) or group not in GROUPS or not option:
            out.append(arg)
            continue
        known = set().union(*(yaml.safe_load(p.read_text()) or {} for p in (conf_dir / group).glob("*.yaml")))
        if option.split(".")[0] not in known:
            _fail(f"unknown option {key}: no {group} config has '{option.split('.')[0]}'")
        out.append(f"++{arg}")
    return out


def _app(cfg) -> None:  # type: ignore[no-untyped-def]
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from seven_bench.errors import UserError
    from seven_bench.run import run_cell
    from seven_bench.spec import build_spec

    sweeping = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        spec = build_spec(cfg)
    except UserError as err:
        if sweeping:  # one impossible cell must not stop the rest of the sweep
            log.error("skipped cell: %s", err)
            return
        _fail(str(err))
        return
    record = run_cell(spec, cfg.results_dir, force=bool(cfg.force), experiment=cfg.get("experiment"),
                      progress=bool(cfg.get("progress", True)))
    metrics = record.get("metrics") or {}
    value = metrics.get("reported_value")
    line = (f"cell {spec.cell_hash} {record['status']}: {spec.model['name']} {spec.task['name']} {spec.pruner['name']} "
            f"target sparsity {spec.sparsity:.3f} achieved {record.get('sparsity', {}).get('achieved', float('nan')):.3f}; "
            f"{metrics.get('reported_split', '')} {metrics.get('reported_metric', '')} "
            f"{'n/a' if value is None else f'{value:.4f}'}")
    if record.get("status") != "ok":
        line += f" ({record.get('error')})"
    print(line)
    if record.get("status") != "ok" and not sweeping:
        raise SystemExit(1)


def main() -> None:
    check_group_choices(sys.argv[1:])
    sys.argv[1:] = force_group_options(sys.argv[1:])
    import hydra

    hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")(_app)()


if __name__ == "__main__":
    main()
