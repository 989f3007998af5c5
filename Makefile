# Every target that runs code installs first (once), so each is one command on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DATA    ?= $(if $(SEVEN_BENCH_DATA),$(SEVEN_BENCH_DATA),$(abspath ../shared/data))

.PHONY: install demo test test-fast bench tables clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[offline,dev,cluster]'
	touch $(STAMP)

demo: install
	SEVEN_BENCH_DATA=$(DATA) HF_HUB_OFFLINE=1 $(BIN)/python -m seven_bench.demo

test: install
	SEVEN_BENCH_DATA=$(DATA) HF_HUB_OFFLINE=1 $(BIN)/pytest -q

test-fast: install
	SEVEN_BENCH_DATA=$(DATA) HF_HUB_OFFLINE=1 $(BIN)/pytest -q -m "not integration"

bench: install
	SEVEN_BENCH_DATA=$(DATA) HF_HUB_OFFLINE=1 $(BIN)/python -m seven_bench.bench

tables: install
	$(BIN)/seven-bench-tables --results-dir results

clean:
	rm -rf results/runs results/tables results/plots outputs multirun
