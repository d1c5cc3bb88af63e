# make setup: .venv with pinned requirements; make test / make demo / make bench use it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONPATH := $(CURDIR)

.PHONY: setup test demo bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

test: setup
	$(PY) -m pytest -q

demo: setup
	$(PY) -m src.demo --out data/demo
	$(PY) -m src.eda --data data/demo --out runs/eda

bench: setup
	$(PY) benchmarks/pipeline.py

clean:
	rm -rf runs data/demo
