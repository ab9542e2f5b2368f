# bedside — two commands do all set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
# uv from PATH, else the uv module of $(PYTHON) (installed with pip on first use).
UV ?= $(shell command -v uv 2>/dev/null)
ifeq ($(strip $(UV)),)
UV := $(PYTHON) -m uv
endif
VENV := .venv
STAMP := $(VENV)/.synced
export UV_PROJECT_ENVIRONMENT := $(VENV)
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true

.PHONY: demo test test-browser bench lint format env docs clean

# The environment is the committed lock file, exactly (`--locked` fails if pyproject.toml and
# uv.lock disagree).
$(STAMP): pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv \
		|| $(PYTHON) -m pip install --quiet --user uv
	$(UV) sync --locked --all-extras --python $(PYTHON) --quiet
	@touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/python scripts/demo.py

# Two worker processes (pytest-xdist), each taking whole test files: 11 min instead of 20.5 on
# the 2-core CI machine. PYTEST_WORKERS=0 runs everything in one process.
PYTEST_WORKERS ?= 2
test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The browser tests alone (Playwright driving /usr/bin/chromium; screenshots in build/screenshots).
test-browser: $(STAMP)
	$(VENV)/bin/python -m pytest -q tests/browser $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts
	$(VENV)/bin/mypy src

format: $(STAMP)
	$(VENV)/bin/ruff format src tests bench scripts
	$(VENV)/bin/ruff check --fix src tests bench scripts

docs: $(STAMP)
	$(VENV)/bin/python scripts/gen_cli_docs.py

clean:
	rm -rf $(VENV) demo-project .pytest_cache
