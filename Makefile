# Two commands do all the set-up on a fresh machine (see README):
#   make demo   install, quick benchmark run over the last two commits (torch 2.13.0) and
#               HEAD under torch 2.14.1, publish the site, print where to open it
#   make test   install, lint, the fast layer, then the rest of the test suite (.ci/run)
# bash, for its `time` keyword: a minimal Debian has no /usr/bin/time.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The host side: kernelwatch, asv, and torch for the tests that call kernels directly.
# torch 2.13.0 is the local CPU wheel; asv installs each matrix torch into its own envs.
HOST_TORCH ?= torch==2.13.0
# Two pytest-xdist workers: most tests wait on one process at a time (asv, pip, Docker), so
# two keep both cores busy (tests/conftest.py groups the units and orders them).
TEST_WORKERS ?= 2

.PHONY: setup demo test test-fast lint gpu-wheels clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@echo "installing kernelwatch, asv and torch into $(VENV) (a few minutes the first time)"
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -e '.[asv,test,gptq,gpt2,vae]' '$(HOST_TORCH)' numpy
	touch $@

demo: setup
	@[ "$$(git rev-list --count HEAD)" -ge 3 ] || { echo "need at least 3 commits (a full clone, not --depth 1)"; exit 2; }
	@# Across the last two commits on torch 2.13.0, and torch 2.14.1 at HEAD only: the history
	@# and the torch-versions page each get what they need in fewer benchmark processes.
	time $(BIN)/kernelwatch run --quick --torch 2.13.0 HEAD~2..HEAD
	time $(BIN)/kernelwatch run --quick --torch 2.14.1 HEAD^!
	$(BIN)/kernelwatch report
	$(BIN)/kernelwatch publish

lint: setup
	$(BIN)/ruff check .

# The fast layer (tests/unit): pure logic, no torch, no asv run; seconds in all.
test-fast: lint
	time $(BIN)/python -m pytest -q tests/unit

# The Docker tests build real images: make sure an engine runs (installs one on bare Debian).
test: test-fast
	scripts/ensure-docker.sh
	scripts/ensure-chromium.sh
	$(BIN)/python -m pytest -v -rfEs --durations=40 -n $(TEST_WORKERS) --dist loadgroup \
	  --no-loadscope-reorder --ignore=tests/unit

# Wheels the GPU device machine lacks (asv and its deps), for Python 3.12 (docs/runners.md).
gpu-wheels:
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 -d .whl \
	  asv==0.6.6 asv_runner==0.3.2 json5 pympler virtualenv distlib platformdirs python-discovery \
	  build pyproject_hooks tqdm filelock
	# llm-compressor's GPTQ (its Triton path is the `llmcompressor` variant on CUDA) and what
	# importing it needs beyond the device's own packages; versions as the host venv resolves.
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 -d .whl \
	  llmcompressor==0.14.0.1 compressed-tensors==0.19.0 loguru==0.7.3 datasets==5.2.0 \
	  dill==0.4.1 multiprocess==0.70.19 pydantic==2.14.3 pydantic-core==2.50.4 \
	  annotated-types==0.8.0 typing-inspection==0.4.5 auto-round==0.15.1 py-cpuinfo==9.0.0
	# torchao (GPT-2's and the VAE's quantized variants) and Liger Kernel (RoPE's `liger`);
	# the device has transformers, onnxruntime, psutil and triton.
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 -d .whl torchao==0.18.0 liger-kernel==0.8.5

clean:
	rm -rf $(VENV) .asv html
