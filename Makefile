# dogiqa: `make demo` installs and scores example photos; `make test` installs and runs the tests.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
MODEL ?=
DEMO_ARGS ?=
BIN := $(VENV)/bin

.PHONY: install test demo lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch first (a CPU build), so that nothing pulls a multi-GB CUDA build
install: $(BIN)/python
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev,ray,openai,serve]"

test: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/python -m dogiqa.demo demo-images > /dev/null
	@$(BIN)/dogiqa score demo-images --output demo-out/scores.jsonl $(if $(MODEL),--model $(MODEL)) $(DEMO_ARGS) \
	  || { s=$$?; [ $$s -ne 2 ] || echo "hint: make demo MODEL=/path/to/local/model-folder (README: Local model folders)"; exit $$s; }

lint: install
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) demo-images demo-out .pytest_cache
