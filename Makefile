# dogiqa: `make demo` installs and scores example photos; `make test` installs and runs the tests.
# Installing runs once: it is redone only when pyproject.toml or this Makefile changes (stamp file), or
# after `make clean`. Every step says what it does.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
MODEL ?=
DEMO_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.dogiqa-installed

.PHONY: install test demo lint clean

$(BIN)/python:
	@echo "== creating the virtual environment $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	@echo "== upgrading pip in $(VENV)"
	$(BIN)/python -m pip install --upgrade pip

# torch first (a CPU build), so that nothing pulls a multi-GB CUDA build
$(STAMP): pyproject.toml Makefile | $(BIN)/python
	@echo "== installing $(TORCH) (the CPU build; set TORCH=... for another)"
	$(BIN)/python -m pip install "$(TORCH)"
	@echo "== installing dogiqa (editable) with the extras dev, ray, openai, serve, datasets, webdataset"
	$(BIN)/python -m pip install -e ".[dev,ray,openai,serve,datasets,webdataset]"
	@touch $(STAMP)
	@echo "== installed; the next make skips this until pyproject.toml changes"

install: $(STAMP)

test: install
	@echo "== ruff"
	$(BIN)/ruff check src tests benchmarks
	@echo "== pytest"
	$(BIN)/python -m pytest -q

# offline and without weights the demo scores with PIQE instead of a VLM and says so (dogiqa/demo.py)
demo: install
	$(BIN)/python -m dogiqa.demo --images demo-images --out demo-out $(if $(MODEL),--model "$(MODEL)") \
	  $(if $(DEMO_ARGS),-- $(DEMO_ARGS))

lint: install
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) demo-images demo-out .pytest_cache
