# System1 developer commands. On a bare machine with only Python 3.11+:
#   make run     the whole stack (embedded PostgreSQL and Redis, offline LLM unless configured)
#   make test    lint, then the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Touched after a successful install: pip runs again only when a requirements file changes.
STAMP := $(VENV)/.installed

.PHONY: venv run lint format test

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Order-only on the interpreter: creating the venv must not count as a change.
$(STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $@

run: venv
	$(BIN)/python -m common.devstack

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/python -m pytest
