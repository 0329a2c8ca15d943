# OET developer entry points. `make rest` and `make test` are all a fresh machine needs.
# The Kubernetes test cluster's first build takes ~20 min on 2 cores (then cached in ~/.cache/oet).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: help install rest k8s test test-k8s cluster-build cluster chart lint bench bench-k8s clean browser screenshot

help: ## show the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed ## create .venv and install OET with its test tools

rest: install ## start the embedded OET REST server on $(HOST):$(PORT)
	$(BIN)/oet-rest --host $(HOST) --port $(PORT)

k8s: cluster-build ## OET on the Kubernetes backend on the test cluster (API on $(PORT)); Ctrl-C stops it
	$(BIN)/python tools/k8s_session.py --port $(PORT)

test: lint browser cluster-build ## lint, then run the whole test suite (browser and Kubernetes tests included)
	$(BIN)/python -m pytest

test-k8s: cluster-build ## run only the tests on the real single-node Kubernetes test cluster (e2e variants too)
	$(BIN)/python -m pytest -m k8s tests/k8s tests/e2e

cluster-build: install ## build (once, cached) the test cluster's binaries, images and the node's image template
	nice -n 10 $(BIN)/python k8s/testenv/prepare.py >/dev/null

cluster: cluster-build ## start the test cluster, print how to use kubectl with it; Ctrl-C stops it
	$(BIN)/python -m tests.k8s.cluster

chart: install ## helm lint --strict the chart (charts/oet) with defaults and each ci/ values file
	@HELM=$$(nice -n 10 $(BIN)/python k8s/testenv/build_binaries.py --component helm \
		| $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)["helm"])')/helm && \
	$$HELM lint --strict charts/oet && \
	for values in charts/oet/ci/*.yaml; do $$HELM lint --strict charts/oet -f $$values || exit 1; done

lint: install ## ruff (lint + format check), mypy and the import-layer contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy --strict k8s/testenv/*.py
	$(BIN)/lint-imports

BENCH_ARGS ?= --pause 0.5
bench: install ## measure latency, throughput and memory against a fresh server, with floors
	$(BIN)/python bench/bench_embedded.py $(BENCH_ARGS)

bench-k8s: cluster-build ## measure the Kubernetes backend (status -> SSE latency, GET list) on the test cluster
	$(BIN)/python bench/bench_kubernetes.py

CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CONSOLE_PNG ?= docs/console.png

browser: ## install Debian's Chromium for the console's browser tests, if it is missing
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq --no-install-recommends chromium; }

screenshot: install browser ## photograph the console of a real server into $(CONSOLE_PNG)
	$(BIN)/python tools/console_screenshot.py --output $(CONSOLE_PNG) --chromium $(CHROMIUM)

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
