# DP Explorer: `make run` starts the app, `make test` runs the whole test suite.
# Both create the virtual environment in .venv on first use.

PYTHON ?= $(shell for p in python3.11 python3.10 python3.9 python3; do command -v $$p >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: run test lint venv dev-venv bench clean

$(BIN)/.runtime-installed: requirements.txt
	@$(PYTHON) scripts/check_python.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $@

$(BIN)/.dev-installed: requirements-dev.txt $(BIN)/.runtime-installed
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(BIN)/.runtime-installed

dev-venv: $(BIN)/.dev-installed

run: venv
	$(BIN)/python serve.py --server.port $(PORT) --server.headless true --browser.gatherUsageStats false

# The lint: the import contracts (pyproject.toml [tool.importlinter]: layers, no circles), ruff's
# rules and format, and mypy on dpcore. `make test` runs it first, so a crossed layer fails like a test.
lint: dev-venv
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: dev-venv lint
	bash scripts/system_deps.sh
	$(BIN)/python -m pytest

bench: dev-venv
	$(BIN)/python bench/accounting_latency.py
	$(BIN)/python bench/training_throughput.py
	$(BIN)/python bench/noise_speed.py
	$(BIN)/python bench/app_latency.py

clean:
	rm -rf $(VENV) .pytest_cache artifacts
