# reelset: `make test` (lint, types, tests) and `make demo` (the main job end to end).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck pytest clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check reelset tests benchmarks examples

typecheck: $(STAMP)
	$(VENV)/bin/mypy reelset

pytest: $(STAMP)
	$(PY) -m pytest

test: lint typecheck pytest

demo: $(STAMP)
	$(PY) -m reelset.demo

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
