# Two commands on a fresh machine:  `make run` (the demo import) and `make test` (the suite).
# Both set up .venv from pyproject.toml on first use; nothing else needs installing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-16)

.PHONY: run test check fix lint bench kit tools clean fuzz mutate

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

# The main job on the embedded default: build the demo MLflow store (cached) and open the wizard on
# it (in a terminal; elsewhere it prints the store and a headless command to try).
run: $(STAMP)
	$(BIN)/kitmlflow demo

# The real `kit` for the compatibility tests, where it can be installed (see README).
kit:
	@bash scripts/install-kit.sh

tools:
	@bash scripts/install-test-tools.sh

# KITMLFLOW_TEST_REGISTRY_BIN: the registry the push tests (and kit's push/pull test) start.
test: check kit tools
	PATH="$(CURDIR)/.tools/bin:$$PATH" \
	KITMLFLOW_TEST_REGISTRY_BIN="$${KITMLFLOW_TEST_REGISTRY_BIN:-$$(command -v docker-registry)}" \
	$(BIN)/python -m pytest -q -ra

# Random exploration of the @given tests. `make test` and CI draw fixed examples (the "ci" Hypothesis
# profile: derandomized, no example database); this draws new ones every run, 10x as many
# (KITMLFLOW_FUZZ_FACTOR). A failure prints its falsifying example: add it to that test as an @example.
fuzz: $(STAMP) kit tools
	KITMLFLOW_HYPOTHESIS_PROFILE=fuzz PATH="$(CURDIR)/.tools/bin:$$PATH" \
		$(BIN)/python -m pytest -q -ra -m hypothesis -p no:cacheprovider --hypothesis-show-statistics

# Does the suite catch what matters? Applies each one-line break of tests/mutations.yaml to a copy of
# the package, runs the tests named for it there, and reports caught/missed and the mutation score.
mutate: $(STAMP) kit tools
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(BIN)/python scripts/mutate.py

# The rules the code keeps (docs/architecture.md): style, types, and the import contracts in pyproject.
check: $(STAMP)
	$(BIN)/ruff check kitmlflow_tui tests bench scripts
	$(BIN)/ruff format --check kitmlflow_tui tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/vulture

# What `make check` asks of style, fixed in place (the rest it reports is for a person to fix).
fix: $(STAMP)
	$(BIN)/ruff check --fix kitmlflow_tui tests bench scripts
	$(BIN)/ruff format kitmlflow_tui tests bench scripts

lint: check

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .tools .pytest_cache
