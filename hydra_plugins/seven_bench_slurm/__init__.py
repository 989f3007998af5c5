"""seven-bench's SLURM launcher for Hydra (`hydra/launcher=slurm` and `slurm_cpu` in conf/): Hydra finds
launchers only under the `hydra_plugins` namespace package, so the class lives here and the decisions
it takes live in seven_bench/slurm.py and seven_bench/slurm_watch.py."""
