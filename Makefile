# The README's two commands: `make demo` (set up, then the main job on the embedded synthetic
# dataset) and `make test` (set up, then the test suite). Both create .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU machines take the on-disk CPU wheel; on a CUDA machine use `make setup TORCH=torch==2.13.0 EXTRAS=gpu,train,test`
# with pip pointed at the CUDA index (see README).
TORCH ?= torch==2.13.0
EXTRAS ?= cpu,train,test

.PHONY: setup demo test test-fast bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

demo: setup
	$(VENV)/bin/steerrec demo

test: setup
	STEERREC_DATA="$${STEERREC_DATA:-../shared/data}" $(PY) -m pytest -q -rs

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) bundles .pytest_cache
