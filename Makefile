# Every target that runs code installs first (once), so each is one command on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DATA    ?= $(if $(SEVEN_BENCH_DATA),$(SEVEN_BENCH_DATA),$(abspath ../shared/data))

.PHONY: install demo lint test test-fast bench tables proxy proxy-plan proxy-tables clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[offline,dev,cluster]'
	touch $(STAMP)

demo: install
	SEVEN_BENCH_DATA=$(DATA) HF_HUB_OFFLINE=1 $(BIN)/python -m seven_bench.demo

lint: install
	$(BIN)/ruff check seven_bench tests hydra_plugins
	$(BIN)/ruff format --check seven_bench tests hydra_plugins

test: install lint
	SEVEN_BENCH_DATA=$(DATA) HF_HUB_OFFLINE=1 $(BIN)/pytest -q

test-fast: install
	SEVEN_BENCH_DATA=$(DATA) HF_HUB_OFFLINE=1 $(BIN)/pytest -q -m "not integration and not slurm"

bench: install
	SEVEN_BENCH_DATA=$(DATA) HF_HUB_OFFLINE=1 $(BIN)/python -m seven_bench.bench

tables: install  # the paper's tables from results/runs (if any cell ran here), then the committed proxy study
	-$(BIN)/seven-bench-tables --results-dir results
	$(BIN)/seven-bench-tables --results-dir results/proxy --proxy

# The proxy study (issue 14) on the offline stand-in, most telling cells first; resumable: finished cells are
# skipped, so run it again (on any machine) to go on. Hours of CPU: records land in results/proxy/runs/.
# PROXY_JOBS cells run side by side (joblib; each gets cores // PROXY_JOBS threads): on 2 cores, two one-thread
# MiniLM cells finish 1.26-1.44x more training steps an hour than one two-thread cell (measured, README).
PROXY_JOBS ?= 2
PROXY = SEVEN_BENCH_DATA=$(DATA) HF_HUB_OFFLINE=1 $(BIN)/seven-bench -m hydra/launcher=local hydra.launcher.n_jobs=$(PROXY_JOBS)
PROXY_SWEEPS = \
	"+experiment=proxy_table2 task=stsb sparsity=0.5 pruner=dense,seven_pre,magnitude,snip seed=0,1,2" \
	"+experiment=proxy_table2 task=mrpc sparsity=0.5 pruner=dense,seven_pre,magnitude,snip seed=0,1,2" \
	"+experiment=proxy_scan" \
	"+experiment=proxy_table2 seed=0,1,2" \
	"+experiment=proxy_table3 seed=0,1,2" \
	"+experiment=proxy_curve" \
	"+experiment=proxy_curve pruner=seven_pre pruner.resurrection=true sparsity=0.5,0.7" \
	"+experiment=proxy_table3 trainer.recipe=own pruner=seven_dyn,platon,movement,soft_movement seed=0,1,2" \
	"+experiment=proxy_table2 task=mrpc sparsity=0.3 pruner=seven_pre,dense trainer.epochs=12,10 seed=0,1,2" \
	"+experiment=proxy_table2 task=mrpc sparsity=0.5 pruner=seven_pre,dense trainer.epochs=10,18 seed=0,1,2" \
	"+experiment=proxy_table2 task=stsb sparsity=0.5 pruner=seven_pre,magnitude,dense trainer.epochs=10 seed=0,1,2"
# The last three: budget-matched controls, SEVEN-pre (and dense) given the optimizer steps of the baselines that
# train before their mask: the lottery ticket's at MRPC@30 (3 IMP rounds + the fine-tune: 1,380 = 12 epochs) and
# @50 (5 rounds: 2,070 = 18 epochs), Progressive's at MRPC@30 and @50 and ISP's at @50 (1,150 and 1,111: 10 epochs) and
# Progressive's at STS-B@50 (1,800: 10 epochs). Columns of their own ([epochs=12] ...), quoted beside the lead they
# test in the report's answer. The STS-B one also runs One-shot: SEVEN-pre was still rising there when the 3-epoch
# recipe ended (+7.87 points in its last epoch, One-shot +2.98), so it asks whether One-shot's lead survives a
# recipe long enough for both to level out.
proxy: install
	@for sweep in $(PROXY_SWEEPS); do echo "== $$sweep"; $(PROXY) $$sweep || exit 1; done

# What `make proxy` has left: each sweep's cells as done / resumes / failed before / to run (reads files only).
proxy-plan: install
	@for sweep in $(PROXY_SWEEPS); do echo "== $$sweep"; $(PROXY) $$sweep plan=true | grep "^seven-bench: plan" || exit 1; done

proxy-tables: install
	$(BIN)/seven-bench-tables --results-dir results/proxy --proxy

clean:
	rm -rf results/runs results/tables results/plots results/hydra outputs multirun
