# Every target sets itself up on a fresh clone: it creates .venv when it is
# missing and installs the package with its extras from the lock file.
PYTHON ?= $(shell .ci/find-python 3.11 2>/dev/null || echo python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_TIMEOUT ?= 900

.PHONY: run run-net test test-all test-compiled compiled lint bench-quick bench bench-net clean lock

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/curcor run examples/treescan.py $(ARGS)

# The second real job: a curcor HTTP server mirrors a tree to a curcor client.
run-net: $(STAMP)
	$(VENV)/bin/curcor run examples/mirror.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The suite on every supported interpreter, each in its own venv.
test-all:
	@for v in 3.11 3.12 3.13; do \
	  $(MAKE) --no-print-directory test VENV=.venv-$$v PYTHON=$$(.ci/find-python $$v) || exit 1; \
	done

# The optional compiled hot path (tools/mypyc_build.py): build/mypyc holds a
# copy of src/curcor with the scheduler, task and runtime modules compiled by
# mypyc. Nothing else changes: without build/mypyc on PYTHONPATH curcor is
# pure Python. test-compiled runs the whole suite against that build.
compiled: $(STAMP)
	$(PY) tools/mypyc_build.py --out build/mypyc

test-compiled: compiled
	EXPECT_COMPILED=1 PYTHONPATH=build/mypyc $(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples tools
	$(VENV)/bin/ruff format --check src tests benchmarks examples tools
	$(VENV)/bin/mypy

# The benchmark suite (benchmarks/README.md): JSON, Markdown and PNG plots in
# benchmarks/results/. bench: every workload on every runtime (Go when `go`
# is on PATH), echo and HTTP included, medians of 3 (about 10 min on 2
# cores). bench-quick: smaller sizes on curcor (pure and compiled), asyncio
# and the floor, echo and HTTP one short run each (about 45 s; the target is under 3 min). bench-net:
# echo and HTTP alone.
bench-quick: $(STAMP)
	$(PY) benchmarks/run.py --suite --quick

bench: $(STAMP)
	$(PY) benchmarks/run.py --suite

bench-net: $(STAMP)
	$(PY) benchmarks/run.py --echo
	$(PY) benchmarks/run.py --http

clean:
	rm -rf $(VENV) .venv-3.* build dist src/curcor/_version.py

# Re-pin the dependencies from the extras in pyproject.toml.
lock:
	rm -rf /tmp/curcor-lock && $(PYTHON) -m venv /tmp/curcor-lock
	/tmp/curcor-lock/bin/pip install --quiet -e '.[test,lint,bench]'
	{ echo "# Pinned test, lint and benchmark dependencies (pip freeze of a 3.11 venv)."; \
	  echo "# Regenerate: make lock. Each pin has wheels for CPython 3.11-3.13."; \
	  /tmp/curcor-lock/bin/pip freeze --exclude-editable; } > requirements.lock
