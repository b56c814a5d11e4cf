# Two commands on a fresh machine: `make run` (the main job) and `make test`.
# Both build .venv with python3 -m venv and install the pinned environment
# (requirements-lock.txt) when it is missing or stale.
# `make cnn` adds the optional extra stemseg[cnn] (requirements-cnn.txt: CPU torch, ~0.9 GB);
# CI runs it before `make test`, users need not (the CNN test is then skipped).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stemseg-installed
LOCK := requirements-lock.txt
CNN := requirements-cnn.txt
CNN_STAMP := $(VENV)/.stemseg-cnn-installed

.PHONY: run test book lab bench student venv cnn lock clean-venv

$(STAMP): $(LOCK) pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/stemseg warm-up
	@touch $(STAMP)

venv: $(STAMP)

# torch==2.13.0 must resolve to its CPU build (a local wheel here and in CI; elsewhere add
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu); the lock's pins are kept (-c).
$(CNN_STAMP): $(STAMP) $(CNN)
	$(BIN)/python -m pip install --quiet -r $(CNN)
	@touch $(CNN_STAMP)

cnn: $(CNN_STAMP)

run: $(STAMP)
	$(BIN)/stemseg demo

# two pytest-xdist workers; conftest.py puts every test in a group that one worker runs whole
# (a test file, so a notebook's cells in order; or one long run) and the longest groups first.
# One BLAS/OpenMP/numba thread per worker (and per notebook kernel it starts): two workers with
# a thread pool each on two cores oversubscribe them, and a notebook run took 135 s instead of 44 s.
TEST_THREADS ?= 1
test: $(STAMP)
	OMP_NUM_THREADS=$(TEST_THREADS) OPENBLAS_NUM_THREADS=$(TEST_THREADS) \
	MKL_NUM_THREADS=$(TEST_THREADS) NUMBA_NUM_THREADS=$(TEST_THREADS) \
	$(BIN)/python -m pytest -n 2 --dist loadgroup --no-loadscope-reorder

# The book (docs/, Sphinx + myst-nb) as static HTML in build/book/html, warnings as errors.
# The notebooks run with one thread per BLAS/OpenMP/numba pool, like make test; their outputs
# are cached in build/book/jupyter_cache, so a rebuild re-runs only notebooks that changed.
BOOK := build/book
book: $(STAMP)
	OMP_NUM_THREADS=$(TEST_THREADS) OPENBLAS_NUM_THREADS=$(TEST_THREADS) \
	MKL_NUM_THREADS=$(TEST_THREADS) NUMBA_NUM_THREADS=$(TEST_THREADS) \
	$(BIN)/python -m sphinx -b html -W --keep-going -q docs $(BOOK)/html
	@echo "book: open $(BOOK)/html/index.html"

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# The student release of the exercises: build/student/ gets every notebook without the cells
# tagged `solution` (nbconvert's TagRemovePreprocessor) and without outputs; the self-check
# cells stay. tests/test_release.py goes through the same function (stemseg.release).
student: $(STAMP)
	$(BIN)/python -m stemseg.release notebooks build/student

# Re-resolve the pinned environment from pyproject.toml (needs network).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/python -m pip install --quiet ".[test]"
	{ head -3 $(LOCK); .lockvenv/bin/python -m pip freeze --exclude-editable | grep -v -e '^stemseg' -e '^-e' | sort -f; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	$(PYTHON) tools/sync_environment.py
	rm -rf .lockvenv

clean-venv:
	rm -rf $(VENV)
