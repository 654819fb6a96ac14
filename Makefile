# The template's own tasks. Start with `make demo` or `make test`; both install what they need.
#
#   PYTHON=python3.12 make test   use another interpreter for the tools' venv (.venv/)
#   make test PYTEST_ARGS=-x      pass options to pytest

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := .demo
PYTEST_ARGS ?=
# In CI the lock file must already match pyproject.toml; elsewhere uv may update it.
UV_SYNC_FLAGS ?= $(if $(CI),--locked,)
# Python may cache the bytecode of hooks/ and tests/ (git-ignored __pycache__/) even where
# PYTHONDONTWRITEBYTECODE is set; the bakes' own Makefiles do the same for theirs.
export PYTHONDONTWRITEBYTECODE :=

.DEFAULT_GOAL := help
.PHONY: help install test test-every-bake lint format demo clean pins

help:
	@echo "make demo     bake the default project into $(DEMO_DIR)/ and run its sample pipeline"
	@echo "make test     lint, then the template's whole test suite (bakes and tests projects)"
	@echo "make test-every-bake  the generated make test of every combination of options (~1.5 h)"
	@echo "make lint     ruff check and ruff format --check on hooks/ and tests/"
	@echo "make format   let ruff fix and format hooks/ and tests/"
	@echo "make install  create $(VENV)/ with the template's dev tools (done by the others)"
	@echo "make clean    remove $(VENV)/, $(DEMO_DIR)/ and caches"
	@echo "make pins     move the uv.lock every bake ships to the newest versions; say what changed"

install: $(STAMP)

# Bootstrap: a plain venv, uv into it with pip, then uv installs the locked dev tools (uv itself is
# one of them, so the sync keeps it). uv never downloads an interpreter: the venv's is the one.
# Bytecode is compiled at install: PYTHONDONTWRITEBYTECODE may be set, and the tests start many
# short Python processes.
$(STAMP): pyproject.toml uv.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install -q uv
	UV_PYTHON_DOWNLOADS=never $(BIN)/uv sync --compile-bytecode $(UV_SYNC_FLAGS)
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check hooks tests
	$(BIN)/ruff format --check hooks tests

format: $(STAMP)
	$(BIN)/ruff check --fix-only hooks tests
	$(BIN)/ruff format hooks tests
	$(BIN)/ruff check hooks tests

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

# The slow tier: every combination of options bakes and passes its own `make test`, two at a time.
test-every-bake: $(STAMP)
	$(BIN)/pytest -m every_bake -n 2 $(PYTEST_ARGS)

# Bakes the default answers into $(DEMO_DIR)/ (overwriting the rendered files, keeping the baked
# project's .venv/ so a second run is quick), then runs the project's own `make run` in the folder
# cookiecutter reports (its name follows the default answers).
demo: $(STAMP)
	$(BIN)/python -c 'import os; from cookiecutter.main import cookiecutter; \
	    path = cookiecutter(".", no_input=True, overwrite_if_exists=True, output_dir="$(DEMO_DIR)"); \
	    os.execvp("make", ["make", "-C", path, "run", "PYTHON=$(PYTHON)"])'

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache
	find hooks tests -name __pycache__ -type d -prune -exec rm -rf {} +

# Maintainers: every bake ships uv.lock, rendered from {{cookiecutter.project_slug}}/uv.lock. This
# rewrites it from a `uv lock --upgrade` of each combination of the options that change the
# resolution and prints what changed. PINS_ARGS=--keep keeps today's versions (after editing the
# dependencies); PINS_ARGS="-P temporalio" moves that package only. Then `make test` and commit.
PINS_ARGS ?=
pins: $(STAMP)
	$(BIN)/python tests/pins.py $(PINS_ARGS)
