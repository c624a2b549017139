# Fresh machine: `make run DIR=~/Pictures` or `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch only builds heron-lite (ONNX export); these releases are the ones pip finds locally here.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
DIR ?= $(HOME)/Pictures
PYTEST_ARGS ?=

.PHONY: install run test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e '.[build,dev,ocr]'
	touch $@

run: install
	$(BIN)/heron models build heron-lite
	$(BIN)/heron index "$(DIR)"
	$(BIN)/heron serve  # the web page and API on http://127.0.0.1:8765/ (`heron shell` for a prompt)

test: install
	$(BIN)/ruff check src tests bench scripts
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

bench: install
	$(BIN)/python bench/bench_index.py
	$(BIN)/python bench/bench_ann.py --sizes 10000,100000

clean:
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache
