# Two commands on a fresh machine:  `make run` (the demo import) and `make test` (the suite).
# Both set up .venv from pyproject.toml on first use; nothing else needs installing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-16)

.PHONY: run test lint bench kit clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

# The main job on the embedded default: build the demo MLflow store (cached) and plan the import
# of its finished run.
run: $(STAMP)
	@uri=$$($(BIN)/kitmlflow demo --print-uri) && run=$$($(BIN)/kitmlflow demo --print-run finished) && \
	  $(BIN)/kitmlflow import "mlflow://runs/$$run" --tracking-uri "$$uri" -t demo-classifier:v1 --dry-run

# The real `kit` for the compatibility tests, where it can be installed (see README).
kit:
	@bash scripts/install-kit.sh

test: $(STAMP) kit
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(BIN)/python -m pytest -q -ra

lint: $(STAMP)
	$(BIN)/ruff check kitmlflow_tui tests bench
	$(BIN)/ruff format --check kitmlflow_tui tests bench

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .tools .pytest_cache
