# Tagbase — developer commands. `make run` and `make test` work on a fresh machine with Python >= 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test test-long check lint format types layers migrations-check security bench bench-full venv clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

run: venv  ## Migrate, load demo data on first start, serve the UI and run the worker (SQLite)
	$(BIN)/tagbase serve

test: venv  ## The whole suite, on SQLite and PostgreSQL (PostgreSQL skipped with a reason if absent)
	$(BIN)/python scripts/run_tests.py $(ARGS)

test-long: venv  ## Long variants: bigger fault loops, large files, long fuzzing
	TAGBASE_LONG_TESTS=1 $(BIN)/python scripts/run_tests.py -m "slow or not slow" $(ARGS)

lint: venv
	$(BIN)/ruff check tagbase tests bench scripts conftest.py
	$(BIN)/ruff format --check tagbase tests bench scripts conftest.py

format: venv
	$(BIN)/ruff format tagbase tests bench scripts conftest.py
	$(BIN)/ruff check --fix tagbase tests bench scripts conftest.py

types: venv
	$(BIN)/mypy tagbase

layers: venv
	$(BIN)/lint-imports

migrations-check: venv
	TAGBASE_DATA_DIR=$$(mktemp -d) $(BIN)/tagbase makemigrations --check --dry-run

# bandit: the code ([tool.bandit] in pyproject.toml). pip-audit: every installed package against
# PyPI's advisory data (scripts/pip_audit.py: a vulnerability fails; when no package can be looked
# up — no network — it says SKIPPED, or fails with TAGBASE_REQUIRE_PIP_AUDIT=1).
security: venv
	$(BIN)/bandit -q -c pyproject.toml -r tagbase
	$(BIN)/python scripts/pip_audit.py

check: lint types layers migrations-check security test  ## Everything CI checks

bench: venv  ## A quick subset of the benchmarks (a few minutes)
	$(BIN)/python -m bench quick

bench-full: venv
	$(BIN)/python -m bench full

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
