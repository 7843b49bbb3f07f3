# deconv-edge: `make demo` and `make test` set everything up in .venv and run.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Reinstall when the dependency list changes.
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

# Shipped models (`make models`): data from ../shared, training resumes across sittings.
SHARED        ?= ../shared
SCALES        ?= 2 3 4
MODEL_MINUTES ?= 70
MODEL_ARGS    ?= --model fsrcnn --activation relu
SHIP_FORMATS  ?= tflite-int8,edgetpu,onnx-fp32,onnx-int8

.PHONY: help setup demo test lint models clean

help:
	@echo "make demo   - set up .venv and run the main job on the shipped default model"
	@echo "make test   - set up .venv and run the test suite"
	@echo "make lint   - ruff"
	@echo "make models - retrain and reconvert the shipped models from ../shared (resumable; MODEL_MINUTES per scale)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[train,dev]'
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

# The main job: the live-camera loop on the built-in moving scene with the shipped default x2 model.
demo: $(STAMP)
	mkdir -p demo-out
	$(BIN)/deconv-edge doctor
	$(BIN)/deconv-edge camera --source demo:// --sink demo-out/camera_x2.mp4 --max-frames 300 \
		--stats-json demo-out/camera-stats.json
	@echo "wrote demo-out/camera_x2.mp4 and demo-out/camera-stats.json"

test: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -q
	# The runtime tests again, in a device-like venv where `import tensorflow` fails.
	bash tests/runtime_only.sh

lint: $(STAMP)
	$(BIN)/ruff check train convert edge_runtime tests benchmarks

models: $(STAMP)
	@test -d $(SHARED)/data/sr/train/t91 || { echo "error: make models needs $(SHARED)/data/sr (set SHARED=DIR)" >&2; exit 2; }
	set -e; for s in $(SCALES); do \
	  run=runs/models/fsrcnn_x$$s; \
	  $(BIN)/deconv-edge train --data $(SHARED)/data/sr/train/t91 --data $(SHARED)/data/sr/train/bsd200 \
	    --val $(SHARED)/data/sr/eval/set5 $(MODEL_ARGS) --scale $$s --minutes $(MODEL_MINUTES) \
	    --out $$run --resume --quiet; \
	  cp $$run/model.keras $$run/fsrcnn_x$$s.keras; \
	  cp $$run/model.keras train/pretrained/fsrcnn_x$$s.keras; \
	  cp $$run/report.json train/pretrained/fsrcnn_x$${s}_train_report.json; \
	  $(BIN)/deconv-edge convert $$run/fsrcnn_x$$s.keras --formats $(SHIP_FORMATS) \
	    --calib $(SHARED)/data/sr/train/t91 --eval $(SHARED)/data/sr/eval/set5 --out $$run/artifacts; \
	  cp $$run/artifacts/fsrcnn_x$${s}_* edge_runtime/models/; \
	  cp $$run/artifacts/report.md edge_runtime/models/fsrcnn_x$${s}_report.md; \
	done

clean:
	rm -rf $(VENV) .venv-runtime .venv-peer demo-out .pytest_cache
