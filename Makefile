# loyalty: `make run` and `make test` do all set-up themselves. `make help` lists targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
# Build outside the clone by default, so every clone and CI run on this machine shares
# one compiled polars (a clean build of everything takes ~17 min on 2 cores). Override with
# CARGO_TARGET_DIR=... as usual.
export CARGO_TARGET_DIR ?= /var/tmp/loyalty-target
BIN := $(CARGO_TARGET_DIR)/release/loyalty
# The distributed engine (Ballista) is a cargo feature, off in a plain `cargo build`;
# every target here builds with it, so run, test and bench share one build.
# FEATURES= builds the lean binary without it.
FEATURES ?= loyalty-cli/ballista,loyalty-e2e/ballista
CARGO_FEATURES := $(if $(FEATURES),--features $(FEATURES))
# `make cluster-up`: a local Ballista cluster for `--engine ballista`.
CLUSTER_PORT ?= 50050
CLUSTER_EXECUTORS ?= 2
PYTHON ?= python3
VENV := .venv
DEMO := data/demo
DEMO_CUSTOMERS ?= 20000
OUT ?= out/demo

# The scheduled job: `make pipeline DATA=... OUT=... [AS_OF=YYYY-MM-DD] [CONFIG=file]`.
DATA ?= $(DEMO)
AS_OF ?=
CONFIG ?=
# Headless Chromium for the report's browser test (Debian's package).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help build run demo test lint fmt bench fixtures fuzz clean pipeline report notebooks cluster-up cluster-down bench-scale bench-engines bench-churn bench-reads bench-build

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

build: ## Build the `loyalty` binary and the tests (release; one profile and one feature set for run, test and bench)
	$(CARGO) build --release --workspace --all-targets $(CARGO_FEATURES)

$(DEMO)/customers.parquet: | build
	$(BIN) gen --out $(DEMO) --customers $(DEMO_CUSTOMERS) --months 24 --seed 42

demo: $(DEMO)/customers.parquet ## Generate the embedded default dataset into data/demo (if absent)

run: build demo ## Build, generate the demo dataset if absent, and run the pipeline on it
	$(BIN) run --data $(DEMO) --out $(OUT)
	@echo "outputs in $(OUT)/; open $(OUT)/report.html in a browser"

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium

test: build $(CHROMIUM) ## Run every test (unit, known-answer, end-to-end, the report in headless Chromium)
	CHROMIUM=$(CHROMIUM) LOYALTY_BIN=$(BIN) $(CARGO) test --release --workspace $(CARGO_FEATURES)

pipeline: build ## The scheduled job: DATA=dir OUT=dir [AS_OF=date] [CONFIG=file] [PREVIOUS=dir]; exit 0 ok, 1 bad input, 2 usage/internal
	$(BIN) run --data $(DATA) --out $(OUT) $(if $(AS_OF),--as-of $(AS_OF)) $(if $(CONFIG),--config $(CONFIG)) $(if $(PREVIOUS),--previous $(PREVIOUS))

report: $(CHROMIUM) ## Render the last run's report (OUT=dir) to report.pdf beside report.html, for mail or archive
	@test -f $(OUT)/report.html || { echo "no $(OUT)/report.html: run 'make run' or 'make pipeline' first" >&2; exit 1; }
	$(CHROMIUM) --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
		--disable-component-update --disable-sync --user-data-dir=$$(mktemp -d) --no-pdf-header-footer \
		--print-to-pdf=$(OUT)/report.pdf file://$(abspath $(OUT))/report.html 2>/dev/null
	@echo "report: $(OUT)/report.html and $(OUT)/report.pdf"

$(VENV)/.notebooks: $(VENV)/bin/python
	$(VENV)/bin/pip install -q "polars==2.1.*" "pyarrow>=21,<22" "matplotlib==3.10.*" "nbconvert==7.*" "nbclient==0.10.*" "ipykernel==7.*"
	touch $@

notebooks: $(VENV)/.notebooks ## Execute notebooks/explore.ipynb headless on the outputs in OUT (default: the demo run)
	@test -f $(OUT)/run.json || $(MAKE) run
	LOYALTY_OUT=$(abspath $(OUT)) $(VENV)/bin/jupyter nbconvert --to notebook --execute notebooks/explore.ipynb \
		--ExecutePreprocessor.timeout=600 --output-dir out/notebooks
	@echo "executed notebook: out/notebooks/explore.ipynb"

lint: ## rustfmt check, clippy -D warnings, rustdoc -D warnings
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --workspace --all-targets $(CARGO_FEATURES) -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --release --workspace --no-deps $(CARGO_FEATURES)

fmt: ## Format the code
	$(CARGO) fmt --all

cluster-up: build ## Start a local Ballista cluster in the background: scheduler df://127.0.0.1:$(CLUSTER_PORT), 2 executors
	@mkdir -p out
	@if [ -f out/cluster.pid ] && kill -0 $$(cat out/cluster.pid) 2>/dev/null; then \
		echo "cluster already up: df://127.0.0.1:$(CLUSTER_PORT) (pid $$(cat out/cluster.pid))"; exit 0; fi; \
	nohup $(BIN) cluster --port $(CLUSTER_PORT) --executors $(CLUSTER_EXECUTORS) > out/cluster.log 2>&1 & \
	echo $$! > out/cluster.pid; sleep 2; \
	if ! kill -0 $$(cat out/cluster.pid) 2>/dev/null; then cat out/cluster.log; rm -f out/cluster.pid; exit 1; fi; \
	echo "cluster up (log: out/cluster.log). Use it with:"; \
	echo "  $(BIN) run --data $(DATA) --out $(OUT) --engine ballista --scheduler df://127.0.0.1:$(CLUSTER_PORT)"

cluster-down: ## Stop the cluster `make cluster-up` started
	@if [ -f out/cluster.pid ]; then kill $$(cat out/cluster.pid) 2>/dev/null || true; rm -f out/cluster.pid; \
		echo "cluster stopped"; else echo "no cluster running (no out/cluster.pid)"; fi

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip

$(VENV)/.fixtures: $(VENV)/bin/python
	$(VENV)/bin/pip install -q "pyarrow>=21,<22"
	touch $@

$(VENV)/.peers-v3: $(VENV)/bin/python
	$(VENV)/bin/pip install -q "duckdb==2.0.*" "polars==2.1.*" "lifetimes==0.11.3" "lightgbm==4.*"
	touch $@

fixtures: $(VENV)/.fixtures ## Rewrite the pyarrow-made test fixtures (an independent producer) in tests/fixtures
	$(VENV)/bin/python tests/fixtures/make_pyarrow_fixture.py tests/fixtures/pyarrow_dataset
	$(VENV)/bin/python tests/fixtures/make_duplicate_column_fixture.py tests/fixtures/duplicate_column.parquet

bench: build $(VENV)/.peers-v3 ## Run the benchmarks (peers installed into .venv) and write BENCHMARKS.md
	BIN=$(BIN) PEER_PYTHON=$(VENV)/bin/python $(PYTHON) bench/bench.py
	KEEP_BENCH_DATA=1 BIN=$(BIN) PEER_PYTHON=$(VENV)/bin/python $(PYTHON) bench/scale.py engines churn

bench-engines: build $(VENV)/.peers-v3 ## The aggregation at 1M x 24: local Polars vs Ballista (2 executors) vs DuckDB, into BENCHMARKS.md
	BIN=$(BIN) PEER_PYTHON=$(VENV)/bin/python $(PYTHON) bench/scale.py engines

bench-churn: build $(VENV)/.peers-v3 ## `loyalty run` vs a DuckDB + LightGBM churn job (same snapshots) on the demo and at 1M x 36, into BENCHMARKS.md
	BIN=$(BIN) PEER_PYTHON=$(VENV)/bin/python $(PYTHON) bench/scale.py churn

bench-scale: build ## `loyalty run` at 1M, 3M and 10M customers x 36 months: time, memory, per stage, into BENCHMARKS.md (about 15 min here)
	BIN=$(BIN) PEER_PYTHON=$(VENV)/bin/python $(PYTHON) bench/scale.py scale

bench-reads: build ## `loyalty run` at 1M x 36 (SCALE_CUSTOMERS for more sizes) with memory-mapped reads and with POLARS_FORCE_ASYNC=1, into BENCHMARKS.md
	BIN=$(BIN) $(PYTHON) bench/scale.py reads

bench-build: ## A cold build of what `make test` builds, timed per crate (cargo --timings), into BENCHMARKS.md (~as long as the build)
	FEATURES=$(FEATURES) $(PYTHON) bench/scale.py build

fuzz: build ## Property-test the importers on 5 million mutated inputs (bounded: 20 minutes; not in CI)
	LOYALTY_FUZZ_CASES=5000000 timeout 1200 $(CARGO) test --release --workspace $(CARGO_FEATURES) -- importers_never_panic

clean: ## Remove build outputs, generated data and outputs
	$(CARGO) clean
	rm -rf out $(DEMO)
