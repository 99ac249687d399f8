# matcher — the two Quickstart commands are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime
STAMP := $(VENV)/.installed

.PHONY: setup setup-runtime setup-dev demo test test-fast lint format eval reranker baselines tune bench-smoke serve bench-desk clean

## What matching needs (the demo, the desk, batches): no test or notebook tooling.
$(RUNTIME): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --no-compile --upgrade pip
	# torch first, pinned: 2.13.0 is the CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install -q --no-compile torch==2.13.0
	$(BIN)/pip install -q --no-compile -e .
	touch $(RUNTIME)

## Plus the tests, the linter and what runs the notebooks (`make test`, CI).
$(STAMP): $(RUNTIME)
	$(BIN)/pip install -q --no-compile -e ".[test]"
	touch $(STAMP)

setup-runtime: $(RUNTIME)
setup: $(STAMP)

## Plus JupyterLab, for working in the notebooks by hand.
setup-dev: $(STAMP)
	$(BIN)/pip install -q --no-compile -e ".[test,dev]"

models/e5-small/runtime.json: $(RUNTIME)
	$(BIN)/matcher model install

## Quickstart 1: set up, convert the default model, build the index and match a sample request.
demo: setup-runtime models/e5-small/runtime.json
	$(BIN)/matcher catalog stats
	$(BIN)/matcher index build
	$(BIN)/matcher match "알루미늄 다이캐스팅 하우징에 기공 불량이 많고, 개선품은 차량 진동 내구 시험까지 받아야 합니다."

## Quickstart 2: set up and run the tests (also what CI runs): every test, the slow ones included.
test: setup
	$(BIN)/ruff check matcher tests bench notebooks
	$(BIN)/python -m pytest -q -m "slow or not slow"

## The quick loop while editing: everything not marked slow (under a minute on an idle 2-core machine).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check matcher tests bench notebooks
	$(BIN)/ruff format --check matcher tests bench

format: setup
	$(BIN)/ruff format matcher tests bench
	$(BIN)/ruff check --fix matcher tests bench

## Synthetic dev and real-dev side by side, with bootstrap intervals (runs/eval/dev, runs/eval/real-dev).
eval: setup
	$(BIN)/matcher evaluate --batched --query-cache --out runs/eval

## Retrain the learned re-ranker (synthetic train + real-train, C and the real cases' weight chosen by
## grouped CV on real-train), then evaluate on dev and real-dev. Rerun after every catalog change.
reranker: setup
	$(BIN)/matcher train reranker --query-cache --without cards --out matcher/configs/reranker.json
	$(BIN)/matcher evaluate --batched --query-cache --out runs/eval

baselines: setup
	$(BIN)/matcher evaluate --batched --query-cache --baselines --out runs/baselines

tune: setup
	$(BIN)/matcher tune --dataset data/requests/train.jsonl --out runs/tune

## The triage desk on http://127.0.0.1:8765 (pages, JSON API, OpenAPI at /docs); Ctrl-C stops it.
serve: setup-runtime models/e5-small/runtime.json
	$(BIN)/matcher serve

## Bounded load benchmark of the desk on loopback (docs/desk.md, BENCHMARKS.md).
bench-desk: setup models/e5-small/runtime.json
	$(BIN)/python bench/desk_load.py

clean:
	rm -rf runs test-artifacts .pytest_cache .ruff_cache
