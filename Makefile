# Two commands a newcomer needs: `make run` (install + the main sweep) and `make test`.
# On a CPU-only machine torch is installed first from TORCH (a CPU build here); on a machine
# that already has torch in the venv (e.g. a CUDA build), it is kept as it is.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
# extra pip arguments for the torch install, e.g. an index that serves CPU wheels
TORCH_PIP_ARGS ?=
SWEEP ?= -m selector=ufo,multisample,random,full

.PHONY: install run test bench report clean-cache tiny-model

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PIP_ARGS) "$(TORCH)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) bench/run.py $(SWEEP)

test: install
	$(PY) -m pytest -q -m "not gpu"

report: install
	$(PY) bench/report.py results/runs

clean-cache:
	rm -rf results/cache

bench: install
	$(PY) -m pytest bench/ -s -p no:cacheprovider

# Rebuild the default tiny model here and ship it with the package (after a recipe change);
# the test suite fails while the default recipe has no shipped build.
tiny-model: install
	$(PY) -m ufo_rl.tiny_model ship
