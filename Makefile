# The two commands of the README:
#   make serve   set up a virtual environment and run the LRS on its embedded PostgreSQL
#   make test    set up the same environment with the dev tools, lint, type-check, run every test
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: serve test lint install audit

# Serving needs the runtime dependencies only; testing adds the dev tools.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(BIN)/.installed-dev: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/.installed-dev

serve: $(BIN)/.installed
	$(BIN)/lrs serve

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

# pytest exits 5 when it collects nothing: that is a broken suite, not a pass.
test: lint
	@$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite is broken"; exit 1; fi; \
	exit $$rc

# Known vulnerabilities in the installed dependencies (asks PyPI's advisory data).
audit: $(BIN)/.installed-dev
	$(BIN)/python -m pip install --quiet pip-audit
	$(BIN)/pip-audit --vulnerability-service pypi --skip-editable
