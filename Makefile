# The targets the README gives a newcomer: `make up` starts the service, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup up demo test lint bench bench-api bench-temporal bench-notify clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

up: setup
	$(BIN)/stadspuls up

demo: setup
	$(BIN)/stadspuls up --demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy devices ingest ngsi storage alerts feeds stadspuls bench

test: lint
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python -m bench.ingest

bench-api: setup
	$(BIN)/python -m bench.api

bench-temporal: setup
	$(BIN)/python -m bench.temporal

bench-notify: setup
	$(BIN)/python -m bench.notify

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache bench/results .stadspuls
