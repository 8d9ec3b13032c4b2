# `make demo` and `make test` are the whole set-up: each creates .venv on first use and
# reinstalls the project whenever pyproject.toml changes.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[dev]' --config-settings editable_mode=compat
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sqlite-cells demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: lint typecheck
	$(VENV)/bin/python -m pytest

test-slow: $(STAMP)
	$(VENV)/bin/python -m pytest -m slow

# Every figure of bench/ (see bench/__main__.py), then bench/RESULTS.md and the plots; the bench
# extra (matplotlib, pyinstrument) is installed once, on top of the dev set-up.
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(VENV)/bin/python -m pip install -q -e '.[dev,bench]' --config-settings editable_mode=compat
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(VENV)/bin/python -m bench --profile

clean:
	rm -rf $(VENV) .sqlite-cells .pytest_cache .mypy_cache .ruff_cache
