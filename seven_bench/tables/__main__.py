"""``python -m seven_bench.tables``: the same as ``seven-bench-tables``."""

from seven_bench.tables.cli import main

raise SystemExit(main())
