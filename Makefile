# The two commands of the README (`make demo`, `make test`) work on a fresh machine with only
# Python 3.11: each creates .venv and installs releasebot into it first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_DIR ?= demo

.PHONY: install prometheus chromium demo test lint format bench environments docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Canary analysis is tested against a real Prometheus (and its promtool): Debian's package, installed
# only when the binary is missing. Installing needs root (or sudo); elsewhere install it yourself.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
prometheus:
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# The status page is tested in a real, headless browser: Debian's chromium and its WebDriver
# (chromium-driver, built from the same source package, so the two versions always match),
# installed only when missing, like prometheus above.
chromium:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }

# The release loop end to end (MLflow on SQLite, a local git environments repo), then the
# example catalog generated and validated.
demo: $(STAMP)
	$(BIN)/releasebot demo --dir $(DEMO_DIR)
	$(BIN)/releasebot validate $(DEMO_DIR)/environments
	$(BIN)/releasebot init $(DEMO_DIR)/example --catalog environments/releasebot.yaml
	$(BIN)/releasebot validate $(DEMO_DIR)/example

test: $(STAMP) prometheus chromium
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check bot tests

format: $(STAMP)
	$(BIN)/ruff format bot tests
	$(BIN)/ruff check --fix .

# Benchmarks are not part of the test run; they print their figures.
bench: $(STAMP) prometheus
	$(BIN)/pytest tests/benchmarks -o python_files='bench_*.py' -o python_functions='bench_*' -s -q

# Regenerate the example environments repo from its catalog (a test fails when it is stale).
environments: $(STAMP)
	$(BIN)/python -m tests.regenerate_environments

# Regenerate the README's configuration reference from bot/settings.py and the catalog schema
# (a test fails when it is stale).
docs: $(STAMP)
	$(BIN)/python -m tests.regenerate_docs

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache *.egg-info
