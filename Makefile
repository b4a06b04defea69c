# ragloop developer commands. A fresh machine needs only `make demo` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install install-browser demo test test-fast lint fix clean bench update-deps

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv from requirements.lock: torch (CPU) first, then the rest

$(STAMP): pyproject.toml requirements.lock scripts/install.sh
	bash scripts/install.sh $(VENV) dev
	@touch $(STAMP)

# The widget test's Chromium (Debian) and DocsGPT widget (npm); see scripts/install_browser.sh.
BROWSER_STAMP := tests/browser/node_modules/.installed

install-browser: $(BROWSER_STAMP) ## Chromium and the DocsGPT widget for the browser test

$(BROWSER_STAMP): tests/browser/package.json tests/browser/package-lock.json scripts/install_browser.sh
	bash scripts/install_browser.sh

DEMO_PORT ?= 8000

demo: install ## Ingest docs/ and serve them on :8000 with the extractive generator (offline)
	$(BIN)/ragloop ingest docs --prune
	@echo
	@echo "ragloop is starting on http://127.0.0.1:$(DEMO_PORT) (API docs at /docs, chat at /chat, console at /console with RAGLOOP_ADMIN_TOKEN set). Try:"
	@echo "  curl -s http://127.0.0.1:$(DEMO_PORT)/v1/query -H 'content-type: application/json' -d '{\"question\": \"How does ragloop avoid re-embedding unchanged documents?\", \"k\": 3}'"
	@echo
	RAGLOOP_GENERATOR=extractive $(BIN)/ragloop serve --port $(DEMO_PORT)

test: lint install-browser ## Lint, type-check and run the whole test suite (CI runs this)
	$(BIN)/pytest $(PYTEST_ARGS)

# The edit-test loop: fakes only, no real model, servers, browser or fresh-venv install (the
# `integration` marker); under a minute on 2 cores. No lint: `make lint` for that.
test-fast: install ## Unit tests with fakes only (pytest -m "not integration"), under a minute
	$(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

lint: install ## ruff (lint + format check) and mypy
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

fix: install ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

# The LangChain peers are the `bench` extra (in the lock); ../shared/data holds the corpora.
BENCH_ARGS  ?=

bench: install ## Benchmarks vs LangChain and the in-process floor (BENCH_ARGS=--quick: smoke run)
	$(PY) -m benchmarks.run_all $(BENCH_ARGS)

update-deps: ## Re-resolve to the newest allowed versions; rewrite requirements.lock if make test passes
	bash scripts/update_deps.sh

clean: ## Remove caches (keeps .venv and ragloop-data)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis
