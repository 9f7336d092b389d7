# make demo: set up .venv if needed and train the movie-genre model on the bundled data.
# make test: set up .venv with the test extras if needed, run ruff, then the whole test suite (JAX, then PyTorch).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_BASE := $(VENV)/.installed-base
STAMP_TEST := $(VENV)/.installed-test

.PHONY: demo test lint test-jax test-torch install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_BASE): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,serve,tune,torch]'
	touch $@ $(STAMP_BASE)

install: $(STAMP_BASE)
install-test: $(STAMP_TEST)

demo: $(STAMP_BASE)
	$(BIN)/multifield demo --out runs/demo

test: lint test-jax test-torch

lint: $(STAMP_TEST)
	$(BIN)/ruff check src tests benchmarks docs

test-jax: $(STAMP_TEST)
	$(BIN)/python -m pytest

# The layers again under the PyTorch backend (CPU build of torch).
test-torch: $(STAMP_TEST)
	KERAS_BACKEND=torch $(BIN)/python -m pytest tests/layers -p no:cacheprovider

clean:
	rm -rf $(VENV) runs .pytest_cache
