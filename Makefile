# make setup | test | train | val | detect | export | sweep | tune | bench      (ARGS="..." passes Hydra overrides)
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

.PHONY: setup test test-fast train val detect export sweep tune bench clean

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

# GNU make itself exits 2 for any failed recipe; RUN prints the command's own status
# (0 completed, 1 a run failed, 2 invalid config, 130 interrupted: experiments/exits.py).
RUN = run() { echo "$$*"; "$$@"; rc=$$?; [ $$rc -eq 0 ] || echo "make: $$3 exited with status $$rc (1 failed run, 2 invalid config, 130 interrupted)" >&2; return $$rc; }; run

train: setup
	@$(RUN) $(PY) -m experiments.train $(ARGS)

# evaluate a weights file: ARGS="weights=outputs/train/<run>/checkpoints/best.pt" (conf_tools/val.yaml)
val: setup
	@$(RUN) $(PY) -m experiments.val $(ARGS)

# boxes on images and videos: ARGS="weights=<best.pt> source=<file|folder|glob>" (conf_tools/detect.yaml)
detect: setup
	@$(RUN) $(PY) -m experiments.detect $(ARGS)

# ONNX / TorchScript: ARGS="weights=<best.pt> format=onnx dynamic=true" (conf_tools/export.yaml)
export: setup
	@$(RUN) $(PY) -m experiments.export $(ARGS)

# validate every job, run the grid (conf/experiment/$(GRID)) through conf/cluster/$(CLUSTER), then
# analysis/report.py --strict on the sweep dir.
# Re-run an interrupted sweep: ARGS="hydra.sweep.dir=multirun/<dir>" (completed runs are skipped).
sweep: setup
	@$(RUN) $(PY) -m experiments.sweep experiment=$(GRID) cluster=$(CLUSTER) $(ARGS)

tune: setup
	@$(RUN) $(PY) -m experiments.tune $(ARGS)

bench: setup
	$(PY) -m benchmarks.run $(ARGS)

clean:
	rm -rf outputs multirun .pytest_cache
