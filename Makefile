# deconv-edge: `make demo` and `make test` set everything up in .venv and run.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Reinstall when the dependency list changes.
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: help setup demo test lint clean

help:
	@echo "make demo   - set up .venv and run the main job on the shipped default model"
	@echo "make test   - set up .venv and run the test suite"
	@echo "make lint   - ruff"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[train,dev]'
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/deconv-edge train --data builtin --scale 2 --steps 300 --out demo-out/run --resume
	$(BIN)/deconv-edge evaluate --model demo-out/run/model.keras --data builtin --per-image
	$(BIN)/deconv-edge evaluate --model bicubic --data builtin --scale 2

test: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -q
	# The runtime tests again, in a device-like venv where `import tensorflow` fails.
	bash tests/runtime_only.sh

lint: $(STAMP)
	$(BIN)/ruff check train convert edge_runtime tests benchmarks

clean:
	rm -rf $(VENV) .venv-runtime .venv-peer demo-out .pytest_cache
