# Two commands from a fresh clone: `make run` (the job on its embedded synthetic log) and
# `make test`. Each creates its own virtualenv in .venv; Java 17+ comes from the machine, or from
# Debian's packages when it has none (scripts/with_java.sh says what to do otherwise). The venv has
# the benchmark extras too (DuckDB, psutil), so the suite's tests of the benchmark engines run.

PYTHON ?= python3
VENV ?= .venv
OUTPUT ?= output
ARGS ?=
PYTEST_ARGS ?=

WITH_JAVA := scripts/with_java.sh $(VENV)
STAMP := $(VENV)/.installed

.PHONY: run test setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test,bench]'
	$(WITH_JAVA) true
	touch $(STAMP)

run: $(STAMP)
	$(WITH_JAVA) $(VENV)/bin/insiders-spark run --output $(OUTPUT) $(ARGS)

test: $(STAMP)
	$(WITH_JAVA) $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(OUTPUT) .pytest_cache spark-warehouse metastore_db *.egg-info
