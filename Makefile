# OET developer entry points. `make rest` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: help install rest test lint bench clean browser screenshot

help: ## show the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed ## create .venv and install OET with its test tools

rest: install ## start the embedded OET REST server on $(HOST):$(PORT)
	$(BIN)/oet-rest --host $(HOST) --port $(PORT)

test: lint browser ## lint, then run the whole test suite
	$(BIN)/python -m pytest

lint: install ## ruff (lint + format check), mypy and the import-layer contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install ## measure latency, throughput and memory against a fresh server
	$(BIN)/python bench/bench_embedded.py

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
