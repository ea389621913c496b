# `make run`: install (once) and run the main job on the embedded default (offline, tiny model, generated data).
# `make test`: install (once) and run the tests (what CI runs).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline

.PHONY: install run test test-all clean official-check

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

# `make official-check OFFICIAL_PIX2VIDEO=/path/to/clone ...`: each baseline beside its official code on identical tiny
# weights (experiments/official_check.py; commits in docs/baselines.md). Methods whose clone is not given are skipped.
OFFICIAL_METHODS := pix2video fatezero rave anyv2v spacetime
OFFICIAL_OUT ?= outputs/official_check
official_var = OFFICIAL_$(shell echo $(1) | tr a-z A-Z)
official-check: $(STAMP)
	@$(foreach m,$(OFFICIAL_METHODS),$(if $($(call official_var,$(m))),\
	  $(BIN)/python -m videoshop_bench.experiments.official_check $(m) --official $($(call official_var,$(m))) --out $(OFFICIAL_OUT) || exit 1;,\
	  echo "official-check: $(call official_var,$(m)) not set: $(m) skipped";))

clean:
	rm -rf outputs multirun .cache/videoshop
