# make setup: .venv with pinned requirements; make test / make demo / make bench use it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONPATH := $(CURDIR)

.PHONY: setup test test-kaggle demo bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# Two pytest-xdist workers, each pinned to its own share of the cores (tests/conftest.py). Whole files
# go to one worker (loadfile), so a module whose tests share one trained run trains it once (loadgroup's
# xdist_group marks were not honoured under pytest 9.2 / xdist 3.8 here). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
PYTEST_ARGS := -q -n $(TEST_WORKERS) --dist loadfile

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# The same suite under the versions of Kaggle's GPU image (requirements-kaggle.txt), in its own venv.
KAGGLE_VENV := .venv-kaggle
$(KAGGLE_VENV)/.installed: requirements-kaggle.txt
	$(PYTHON) -m venv $(KAGGLE_VENV)
	$(KAGGLE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(KAGGLE_VENV)/bin/python -m pip install --quiet -r requirements-kaggle.txt
	touch $@

test-kaggle: $(KAGGLE_VENV)/.installed
	$(KAGGLE_VENV)/bin/python -m pytest $(PYTEST_ARGS)

# No pretrained weights can be downloaded on the build machines, so the demo screens with
# random weights (random ResNet50 features already separate the digits) and trains
# small_resnet from scratch. --no-flip (training and TTA views): a mirrored digit is another
# digit. --tta auto keeps only the views that help on the holdout (a flipped digit does not).
# solution.csv is read only here, to score the demo's submission.
demo: setup
	$(PY) -m src.demo --out data/demo
	$(PY) -m src.eda --data data/demo --out runs/eda
	$(PY) -m src.screen_backbones --data data/demo --backbones resnet50,efficientnet_b0,small_resnet \
		--weights none --augment none --mode features --epochs 3 --image-size 64 64 --out runs/screen
	$(PY) -m src.train --data data/demo --backbone small_resnet --weights none --augment light --no-flip \
		--stage1-size 32 32 --stage1-epochs 8 --stage1-lr 3e-3 --stage2-size 48 48 --stage2-epochs 3 \
		--stage2-lr 1e-3 --decay-steps 100 --out runs/demo-small_resnet --resume
	$(PY) -m src.submit --data data/demo --run runs/demo-small_resnet \
		--tta auto --name demo --overwrite \
		--solution data/demo/solution.csv
	$(PY) -m src.ledger

bench: setup
	$(PY) benchmarks/pipeline.py
	$(PY) benchmarks/epoch_end.py
	$(PY) benchmarks/screening.py
	$(PY) benchmarks/tta.py

clean:
	rm -rf runs data/demo
