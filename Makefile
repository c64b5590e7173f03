# pypod — the two commands of the README are the contract: `make demo` and `make test`.
PYTHON ?= /usr/bin/python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# pytest arguments, e.g. `make test PYTEST_ARGS="-k seccomp -x"`
PYTEST_ARGS ?=

.PHONY: setup demo test unit lint bench clean

setup: $(VENV)/.installed

# Host packages first (idempotent: apt-get runs only when something is missing), then the venv,
# built from Debian's python3.11 (the pyenv shim on PATH costs ~50 ms per start, see MACHINE.md).
$(VENV)/.installed: pyproject.toml scripts/setup-host
	bash scripts/setup-host
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

demo: setup
	bash demo/demo.sh

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: setup
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: setup
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
