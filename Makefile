# dlc-guard — everything sets itself up from nothing: a virtualenv in .venv, tools in .tools.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
UPSTREAM ?= ../shared/dlc-data/upstream

.PHONY: all setup run test lint typecheck unit catalog bench clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## run: judge a handful of real references with the embedded catalog
run: $(STAMP)
	$(VENV)/bin/dlc-guard check --as-of 2026-11-23 --fail-on never - < examples/images.txt

## test: lint, type-check and run every test
test: lint typecheck unit

lint: $(STAMP)
	$(VENV)/bin/ruff check policy controller tests scripts bench
	$(VENV)/bin/ruff format --check policy controller tests scripts bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -q

## catalog: regenerate the embedded catalog from the upstream data
catalog: $(STAMP)
	$(PY) scripts/build_catalog.py $(UPSTREAM) policy/data/catalog.json

## bench: measure resolve+evaluate throughput
bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
