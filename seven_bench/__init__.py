"""seven-bench: a reproduction harness for the SEVEN transformer-pruning paper and its baselines."""

__version__ = "0.1.0"
