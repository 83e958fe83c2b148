# One command sets up and runs each job; the venv is made on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench lint clean

$(STAMP): pyproject.toml
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

test: $(STAMP)  ## the whole test suite (what CI runs)
	$(BIN)/python -m pytest -ra

bench: $(STAMP)  ## lazycell vs dask, same run, printed as a table
	$(BIN)/python benchmarks/bench_schedulers.py

lint: $(STAMP)
	$(BIN)/ruff check lazycell tests benchmarks
	$(BIN)/ruff format --check lazycell tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
