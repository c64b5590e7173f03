# pypod — the two commands of the README are the contract: `make demo` and `make test`.
PYTHON ?= /usr/bin/python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# pytest arguments, e.g. `make test PYTEST_ARGS="-k seccomp -x"`
PYTEST_ARGS ?=

.PHONY: setup demo test unit lint bench clean bytecode

setup: $(VENV)/.installed

# Every pypod command starts an interpreter; without bytecode each start recompiles the sources
# (PYTHONDONTWRITEBYTECODE may be set), so compile them explicitly (quick when up to date).
bytecode: setup
	$(BIN)/python -m compileall -q src

# Host packages first (idempotent: apt-get runs only when something is missing), then the venv,
# built from Debian's python3.11 (the pyenv shim on PATH costs ~50 ms per start, see MACHINE.md).
$(VENV)/.installed: pyproject.toml scripts/setup-host $(wildcard bin/pypod*)
	bash scripts/setup-host
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

demo: bytecode
	bash demo/demo.sh

test: bytecode
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: bytecode
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: bytecode
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
