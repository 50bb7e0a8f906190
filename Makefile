# bitrader: every target documents itself (make help)
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DURATION ?= 0
export PYTHONDONTWRITEBYTECODE := 1

.DEFAULT_GOAL := help

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-12s %s\n", $$1, $$2}'

# the install also builds the C hot paths (shm/_ringc.c, procs/featurecalc/_featc.c,
# procs/marketdata/_bookrow.c, procs/trading/_syncer.c) in place:
# rebuild when they change
$(STAMP): pyproject.toml shm/_ringc.c procs/featurecalc/_featc.c procs/marketdata/_bookrow.c \
    procs/trading/_syncer.c
	@command -v $(PY) >/dev/null || { echo "need $(PY) on PATH (set PY=...)"; exit 2; }
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)  ## create .venv and install (first use only)

# make demo [CONFIG=configs/x.toml] [NS=name] [GROUP=transport] [RUN_DIR=dir] [DURATION=s]
demo: $(STAMP)  ## run the demo until Ctrl-C or DURATION s (CONFIG=, NS=, GROUP=, RUN_DIR=)
	$(BIN)/python -m procs.demo --duration $(DURATION) $(if $(CONFIG),--config $(CONFIG)) \
		$(if $(NS),--ns $(NS)) $(if $(GROUP),--group $(GROUP)) $(if $(RUN_DIR),--run-dir $(RUN_DIR))

# Debian packages that some tests drive for real (h5dump from HDF5 1.10, Prometheus, Chromium).
# Installed only when missing, only on Debian, only as root; elsewhere those tests say they skip.
SYSTOOLS := h5dump:hdf5-tools promtool:prometheus chromium:chromium chromedriver:chromium-driver

sysdeps:  ## install the Debian packages tests need, when missing (root on Debian only)
	@missing=""; for t in $(SYSTOOLS); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ -f /etc/debian_version ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "not root on Debian: the tests that need$$missing will say they skipped"; fi

test: $(STAMP) sysdeps  ## the default test run (unit + integration + e2e, xdist)
	$(BIN)/python -m pytest -q

chaos: $(STAMP)  ## the chaos suite, long (CHAOS_S=300 s of faults; make test runs 30 s)
	BITRADER_CHAOS_S=$${CHAOS_S:-300} $(BIN)/python -m pytest -q -s -n 0 tests/e2e/test_chaos.py

test-e2e: $(STAMP)  ## only the end-to-end tests
	$(BIN)/python -m pytest -q -m e2e

check: $(STAMP)  ## ruff format --check, ruff check, mypy --strict, the layout contract
	$(BIN)/ruff format --check procs shm ipc tests
	$(BIN)/ruff check procs shm ipc tests
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

fmt: $(STAMP)  ## apply ruff format and safe fixes
	$(BIN)/ruff format procs shm ipc tests
	$(BIN)/ruff check --fix procs shm ipc tests

# hftbacktest (the backtest_rate baseline) pins numpy < 2.3: it gets its own environment
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed: pyproject.toml shm/_ringc.c procs/featurecalc/_featc.c procs/marketdata/_bookrow.c \
    procs/trading/_syncer.c
	$(PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q -e '.[dev,bench]'
	@touch $@

bench-backtest: $(BENCH_VENV)/.installed  ## backtest_rate beside hftbacktest (own venv: .venv-bench)
	$(BENCH_VENV)/bin/python -m tests.bench.run backtest

bench: $(STAMP)  ## run benchmarks, write .bench/results.json
	$(BIN)/python -m tests.bench.run $(BENCH)

run: $(STAMP)  ## supervisord in the foreground with the demo config
	$(BIN)/bitrader up --foreground

clean-shm:  ## remove stale bitrader shared-memory segments
	$(BIN)/python -m shm.segment --clean

.PHONY: help venv sysdeps demo test test-e2e chaos check fmt bench bench-backtest run clean-shm
