# make setup | test | train | sweep | tune | bench      (ARGS="..." passes Hydra overrides)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
GRID ?= default
CLUSTER ?= local
# spinning OpenMP threads collapse CPU throughput when processes share cores
export OMP_WAIT_POLICY ?= PASSIVE
# torch is pinned here only where the machine caps it (see README); elsewhere pip picks.
TORCH_PIN ?= $(shell $(PYTHON) -c "import os;print('torch==2.14.1 torchvision==0.29.1' if os.path.exists('/etc/xdg/pip/constraints.txt') else '')")

.PHONY: setup test test-fast train sweep tune bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet $(TORCH_PIN) -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

test: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

test-fast: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow"

train: setup
	$(PY) -m experiments.train $(ARGS)

# validate every job, run the grid (conf/experiment/$(GRID)) through conf/cluster/$(CLUSTER), then
# analysis/report.py --strict on the sweep dir. Exit 0 all completed, 1 failures, 2 invalid config.
# Re-run an interrupted sweep: ARGS="hydra.sweep.dir=multirun/<dir>" (completed runs are skipped).
sweep: setup
	$(PY) -m experiments.sweep experiment=$(GRID) cluster=$(CLUSTER) $(ARGS)

tune: setup
	$(PY) -m experiments.tune $(ARGS)

bench: setup
	$(PY) -m benchmarks.run $(ARGS)

clean:
	rm -rf outputs multirun .pytest_cache
