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

# No pretrained weights can be downloaded on the build machines, so the demo screens with
# random weights: random ResNet50 features already separate the digits.
demo: setup
	$(PY) -m src.demo --out data/demo
	$(PY) -m src.eda --data data/demo --out runs/eda
	$(PY) -m src.screen_backbones --data data/demo --backbones resnet50,efficientnet_b0,small_resnet \
		--weights none --augment none --mode features --epochs 3 --image-size 64 64 --out runs/screen

bench: setup
	$(PY) benchmarks/pipeline.py
	$(PY) benchmarks/screening.py

clean:
	rm -rf runs data/demo
