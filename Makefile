# `make run`: install (once) and run the main job on the embedded default (offline, tiny model, generated data).
# `make test`: install (once) and run the tests (what CI runs).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline

.PHONY: install run test test-all clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python run.py $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q $(ARGS)

clean:
	rm -rf outputs multirun .cache/videoshop
