# Two commands on a fresh machine: `make run` (the main job) and `make test`.
# Both build .venv with python3 -m venv and install the pinned environment
# (requirements-lock.txt) when it is missing or stale.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stemseg-installed
LOCK := requirements-lock.txt

.PHONY: run test lab bench venv lock clean-venv

$(STAMP): $(LOCK) pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/stemseg demo

test: $(STAMP)
	$(BIN)/python -m pytest

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

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
