# `make demo`, `make web` and `make test` are the whole set-up: each creates .venv on first use
# and reinstalls the project whenever pyproject.toml changes. `make test` also installs Debian's
# chromium for the browser test when it is missing and we are root on a machine with apt.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo web browser test test-slow lint typecheck bench clean FORCE

# runtime/_locks.c, runtime/_leaving.c, sqlite_cells/read/_changescan.c and
# sqlite_cells/sql/_tokenloop.c are compiled by the
# install (a C compiler and Python's headers are needed). The install is editable in *strict* mode: a tree of links to the package's
# files (build/__editable__.*), so that the one import name the distribution claims,
# `sqlite_cells`, is all it puts on the path (SPEC §1; a path to the repository would make its
# `runtime`, `codec`, `bench`… importable from anywhere), and type checkers follow it. A file
# added or removed needs its link made or dropped: the install runs again when the list of the
# package's files changes ($(FILES)), not when a file's text does (the links show it).
INSTALL := $(VENV)/bin/python -m pip install -q --config-settings editable_mode=strict -e
FILES := $(VENV)/.package-files

$(FILES): FORCE
	@mkdir -p $(VENV)
	@find sqlite_cells codec runtime \( -name '*.py' -o -name '*.pyi' -o -name py.typed \) \
		-not -path '*/__pycache__/*' | LC_ALL=C sort > $@.new
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

$(STAMP): Makefile pyproject.toml setup.py runtime/_locks.c runtime/_leaving.c \
		sqlite_cells/read/_changescan.c sqlite_cells/sql/_tokenloop.c $(FILES)
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(INSTALL) '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sqlite-cells demo

# The live chat in the browser (examples/web) on the default store; prints its URL.
web: $(STAMP)
	$(VENV)/bin/python -m examples.web

# The browser test's Chromium: Debian's package, installed only where it is missing and we may
# (root, apt-get). Elsewhere the test skips and says why; a failed install warns and goes on.
CHROMIUM := /usr/bin/chromium

browser:
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium for the browser test (apt-get)"; \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) \
			>/dev/null || echo "warning: chromium could not be installed; the browser test will skip"; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The tests start ≈ 700 Python processes (the command, writers, crash loops): they run with
# bytecode caching on, whatever PYTHONDONTWRITEBYTECODE says, or each would compile the package
# again (≈ 0.1 s a process, and 7 s of pytest's own rewriting).
PYTEST := PYTHONDONTWRITEBYTECODE= $(VENV)/bin/python -m pytest

# The suite runs in TEST_WORKERS processes (pytest-xdist; each test wholly in one of them): most
# of its time is spent waiting on other processes, files and timeouts, so on two cores two
# processes finish it in ≈ 55% of the time one takes, and four in ≈ 40% (≈ 6.5 min against
# ≈ 9). `make test TEST_WORKERS=0` runs it in one.
TEST_WORKERS ?= 4

test: lint typecheck browser
	$(PYTEST) -n $(TEST_WORKERS) --dist worksteal

test-slow: $(STAMP)
	$(PYTEST) -m slow

# Every figure of bench/ (see bench/__main__.py), then bench/RESULTS.md and the plots; the bench
# extra (matplotlib, pyinstrument) is installed once, on top of the dev set-up.
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(INSTALL) '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(VENV)/bin/python -m bench --profile

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build
	rm -f runtime/*.so sqlite_cells/read/*.so sqlite_cells/sql/*.so
