# Two commands from a fresh clone: `make run` (the job on its embedded synthetic log) and
# `make test`. Each creates its own virtualenv in .venv; Java 17+ comes from the machine, or from
# Debian's packages when it has none (scripts/with_java.sh says what to do otherwise).
#
#   make check       lint (ruff) and the import contract (import-linter): no Spark needed
#   make test        the whole suite, real-log and cluster tests included (they skip without ../shared)
#   make test-fast   the tests that need no JVM: the inner loop
#   make dist        what a scheduler deploys: dist/insiders_spark-<version>-py3-none-any.whl (pip wheel)
#                    and dist/insiders_spark.zip (scripts/build_zip.py, the zip scripts/submit.sh ships)

PYTHON ?= python3
VENV ?= .venv
OUTPUT ?= output
ARGS ?=
PYTEST_ARGS ?=

WITH_JAVA := scripts/with_java.sh $(VENV)
STAMP := $(VENV)/.installed
LINTED := insiders_spark jobs tests studies benchmarks

.PHONY: run test test-fast check setup dist clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test,bench,dev,mlflow,connect]'
	$(WITH_JAVA) true
	touch $(STAMP)

run: $(STAMP)
	$(WITH_JAVA) $(VENV)/bin/insiders-spark run --output $(OUTPUT) $(ARGS)

test: $(STAMP)
	$(WITH_JAVA) $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -m "not spark" $(PYTEST_ARGS)

check: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/lint-imports

# The wheel is built in pip's isolated environment (setuptools from pyproject's build-system); the
# zip from this checkout, recording its git commit and whether it had uncommitted changes.
dist: $(STAMP)
	rm -f dist/insiders_spark-*.whl
	$(VENV)/bin/python -m pip wheel --quiet --no-deps --wheel-dir dist .
	$(VENV)/bin/python scripts/build_zip.py dist/insiders_spark.zip
	@ls -l dist/insiders_spark-*.whl dist/insiders_spark.zip

clean:
	rm -rf $(VENV) $(OUTPUT) .pytest_cache spark-warehouse metastore_db *.egg-info dist
