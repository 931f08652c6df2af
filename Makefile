# Developer entry points. Needs only Python 3.11+ on the machine; everything else goes in .venv.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
# The first Python >= 3.11 on PATH; override with `make PYTHON=/path/to/python3.12 venv`.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && { echo $$p; break; }; done)

.PHONY: help venv run test lint audit bench clean distclean

help:
	@echo "make run    - start the daemon on the sandbox organisation (http://127.0.0.1:8080)"
	@echo "make test   - ruff, mypy and pytest"
	@echo "make lint   - ruff and mypy only"
	@echo "make audit  - pip-audit of the installed dependencies (a warning when offline)"
	@echo "make bench  - run every bench/*.py"
	@echo "make venv   - create .venv and install taskplanner with its dev extras"
	@echo "make clean  - remove caches and build output (distclean also removes .venv)"

venv: $(VENV)/.installed

# Reinstalls only when pyproject.toml changes (or the stamp is missing).
$(VENV)/.installed: pyproject.toml
	@if [ ! -x $(BIN)/python ]; then \
		if [ -z "$(PYTHON)" ]; then echo "error: Python 3.11 or newer not found on PATH" >&2; exit 1; fi; \
		echo "creating $(VENV) with $(PYTHON)"; \
		$(PYTHON) -m venv $(VENV); \
	fi
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

run: venv
	$(BIN)/taskplanner sandbox --port 8080

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

test: venv lint
	$(BIN)/pytest -q

# Fails on known vulnerabilities; PyPI's vulnerability data out of reach is only a warning.
audit: venv
	$(BIN)/python .ci/audit.py

bench: venv
	@set -e; shopt -s nullglob; for f in bench/*.py; do echo "== $$f"; $(BIN)/python "$$f"; done

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache test-artifacts
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
