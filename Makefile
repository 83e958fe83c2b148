# One command sets up and runs each job; the venv is made on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINTED := lazycell tests benchmarks
# Packages mypy checks; $(wildcard) drops one that does not exist (yet).
TYPED := $(wildcard lazycell/graph lazycell/schedulers lazycell/events)
MYPY := $(BIN)/mypy $(TYPED)

# The JupyterLab extension (labextension/): pip's build hook builds it with
# Node and jlpm; a change to its sources reinstalls, and so rebuilds it.
LABEXT_SOURCES := $(wildcard labextension/package.json labextension/yarn.lock \
	labextension/tsconfig.json labextension/src/*.ts labextension/style/*)

.PHONY: setup demo test test-fast bench lint typecheck clean

$(STAMP): pyproject.toml $(LABEXT_SOURCES)
	@command -v node >/dev/null || { echo "make setup builds the JupyterLab extension in" \
		"labextension/ and needs Node.js 20 (node on PATH); install it and run make again"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dask,test]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)  ## one graph on each scheduler, then run the quickstart notebook
	$(BIN)/python -m lazycell.demo
	$(BIN)/jupyter nbconvert --to notebook --execute notebooks/quickstart.ipynb \
		--output-dir build --output quickstart.executed.ipynb \
		--ExecutePreprocessor.store_widget_state=False
	@echo "executed notebook: build/quickstart.executed.ipynb (open it in JupyterLab to see the panels)"

test: $(STAMP)  ## the whole test suite (what CI runs); browser tests need chromium
	@bash scripts/install-chromium || true
	$(BIN)/python -m pytest -ra

test-fast: $(STAMP)  ## the edit loop: everything but the slow and browser tests
	$(BIN)/python -m pytest -ra -m "not slow and not browser"

bench: $(STAMP)  ## lazycell vs dask, same run, printed as tables
	$(BIN)/python benchmarks/bench_schedulers.py
	$(BIN)/python benchmarks/bench_import.py

lint: $(STAMP)  ## ruff (lint and format) on everything, mypy on $(TYPED)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(MYPY)

typecheck: $(STAMP)  ## mypy alone (also the pre-commit hook)
	$(MYPY)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
	rm -rf labextension/node_modules labextension/lib labextension/tsconfig.tsbuildinfo \
		lazycell/labextension
