"""`seven-bench key=value ...`: one cell (or, with -m, a sweep of cells) through Hydra."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from seven_bench.conf import CONF_DIR

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
    against its own pruner/model/task. `++` adds the key to every job, so the keys are also listed in
    `+swept_options=[...]`, and build_spec drops each from the groups whose yaml lacks it (else magnitude
    would carry seven_pre's first_moment: another hash, a rerun). A key no option of the group has is
    still refused, in one line."""
    if not {"-m", "--multirun"} & set(argv):
        return argv
    import yaml

    out, swept = [], []
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
        swept.append(key)
    return out + ([f"+swept_options=[{','.join(swept)}]"] if swept else [])


def plan_overrides(argv: list[str]) -> list[str]:
    """With `plan=true` a sweep only reads files, so it runs in this process: launcher overrides (SLURM,
    joblib) are dropped, else a plan would submit jobs."""
    planning = any(
        arg.split("=", 1)[0].lstrip("+") == "plan" and arg.split("=", 1)[1].lower() in ("true", "1", "yes")
        for arg in argv
        if "=" in arg
    )
    if not planning:
        return argv
    return [arg for arg in argv if not arg.lstrip("+").startswith(("hydra/launcher=", "hydra.launcher."))]


def _plan(spec: Any, results_dir: str) -> dict[str, Any]:
    from seven_bench.records import cell_state, duration_label, expected_seconds

    state = cell_state(results_dir, spec.cell_hash)
    status: dict[str, Any] = {"status": "planned", "state": state, "cell": spec.cell_hash}
    cost = ""
    if state != "done":
        expected = expected_seconds(results_dir, spec.to_dict())
        status["expected_seconds"] = expected and expected["seconds"]
        cost = (
            f" ({duration_label(expected['seconds'])}, the mean of {expected['runs']} finished run(s) of its setup"
            f"{'' if expected['same_sparsity'] else ' at other sparsities'})"
            if expected
            else " (no finished run of its setup to time it by)"
        )
    print(
        f"plan: cell {spec.cell_hash} {state}: {spec.model['name']} {spec.task['name']} {spec.pruner['name']} "
        f"sparsity {spec.sparsity:g} seed {spec.seed}{cost}"
    )
    return status


def _app(cfg) -> dict[str, Any] | None:  # type: ignore[no-untyped-def]
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from seven_bench.interrupts import watch_parent

    sweeping = HydraConfig.get().mode == RunMode.MULTIRUN
    if sweeping:  # first, before the heavy imports: a local-launcher worker stops when the sweep's main process dies
        watch_parent(str(HydraConfig.get().launcher.get("_target_", "")).endswith("JoblibLauncher"))

    from seven_bench.errors import CellInterrupted, UserError
    from seven_bench.run import run_cell
    from seven_bench.spec import build_spec
    from seven_bench.sweep import write_job_status

    try:
        spec = build_spec(cfg)
    except UserError as err:
        if sweeping:  # one impossible cell must not stop the rest of the sweep
            log.error("skipped cell: %s", err)
            return {"status": "skipped", "error": str(err)}
        _fail(str(err))
        return None
    if cfg.get("plan"):
        return _plan(spec, str(cfg.results_dir))
    try:
        record = run_cell(
            spec,
            cfg.results_dir,
            force=bool(cfg.force),
            experiment=cfg.get("experiment"),
            progress=bool(cfg.get("progress", True)),
            export=bool(cfg.get("export", False)),
        )
    except (KeyboardInterrupt, CellInterrupted) as err:  # the record says interrupted; stop the process too
        if sweeping:
            write_job_status(HydraConfig.get().runtime.output_dir, {"status": "interrupted", "cell": spec.cell_hash})
        if isinstance(err, CellInterrupted):
            raise SystemExit(128 + err.signum) from None
        raise
    metrics = record.get("metrics") or {}
    value = metrics.get("reported_value")
    line = (
        f"cell {spec.cell_hash} {record['status']}: {spec.model['name']} {spec.task['name']} {spec.pruner['name']} "
        f"target sparsity {spec.sparsity:.3f} achieved {record.get('sparsity', {}).get('achieved', float('nan')):.3f}; "
        f"{metrics.get('reported_split', '')} {metrics.get('reported_metric', '')} "
        f"{'n/a' if value is None else f'{value:.4f}'}"
    )
    if record.get("status") != "ok":
        line += f" ({record.get('error')})"
    print(line)
    if record.get("status") != "ok" and not sweeping:
        raise SystemExit(1)
    return {"status": record.get("status"), "cell": spec.cell_hash, "error": record.get("error")}


def main() -> None:
    check_group_choices(sys.argv[1:])
    sys.argv[1:] = force_group_options(plan_overrides(sys.argv[1:]))
    import hydra

    from seven_bench.interrupts import mark_main_process

    mark_main_process()

    hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")(_app)()


if __name__ == "__main__":
    main()
