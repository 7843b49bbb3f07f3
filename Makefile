# deconv-edge: `make demo` and `make test` set everything up in .venv and run.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Reinstall when the dependency list changes.
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

# Shipped models (`make models`): data from ../shared, training resumes across sittings. Two stages per
# scale: train from scratch (runs/models/), then fine-tune from that model with a new schedule (runs/ft/),
# where x3/x4 get an upsampler that holds bicubic whole (11 and 16 taps; the weights carry over exactly).
SHARED           ?= ../shared
SCALES           ?= 2 3 4
MODEL_MINUTES    ?= 70
FINETUNE_MINUTES_2 ?= 70
FINETUNE_MINUTES_3 ?= 95
FINETUNE_MINUTES_4 ?= 95
MODEL_ARGS       ?= --model fsrcnn --activation relu
FINETUNE_KERNEL_2 ?= 9
FINETUNE_KERNEL_3 ?= 11
FINETUNE_KERNEL_4 ?= 16
FINETUNE_LR_2    ?= 3e-4
FINETUNE_LR_3    ?= 5e-4
FINETUNE_LR_4    ?= 5e-4
FAST_MINUTES     ?= 32
FAST_FINETUNE_MINUTES ?= 60
SHIP_FORMATS     ?= tflite-int8,edgetpu,onnx-fp32,onnx-int8
TRAIN_DATA       = --data $(SHARED)/data/sr/train/t91 --data $(SHARED)/data/sr/train/bsd200 \
                   --val $(SHARED)/data/sr/eval/set5
CONVERT_ARGS     = --calib $(SHARED)/data/sr/train/t91 --eval $(SHARED)/data/sr/eval/set5

.PHONY: help setup demo test lint models models-fast clean

help:
	@echo "make demo   - set up .venv and run the main job on the shipped default model"
	@echo "make test   - set up .venv and run the test suite"
	@echo "make lint   - ruff"
	@echo "make models - retrain and reconvert the shipped x2/x3/x4 models from ../shared (resumable)"
	@echo "make models-fast - the same for the fast x2 model (FSRCNN-s)"

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
	  run=runs/models/fsrcnn_x$$s; ft=runs/ft/fsrcnn_x$$s; \
	  case $$s in 2) k=$(FINETUNE_KERNEL_2); lr=$(FINETUNE_LR_2); m=$(FINETUNE_MINUTES_2);; \
	    3) k=$(FINETUNE_KERNEL_3); lr=$(FINETUNE_LR_3); m=$(FINETUNE_MINUTES_3);; \
	    *) k=$(FINETUNE_KERNEL_4); lr=$(FINETUNE_LR_4); m=$(FINETUNE_MINUTES_4);; esac; \
	  $(BIN)/deconv-edge train $(TRAIN_DATA) $(MODEL_ARGS) --scale $$s --minutes $(MODEL_MINUTES) \
	    --out $$run --resume --quiet; \
	  $(BIN)/deconv-edge train $(TRAIN_DATA) $(MODEL_ARGS) --scale $$s --minutes $$m \
	    --upsampler-kernel $$k --lr $$lr --init $$run/model.keras --out $$ft --resume --quiet; \
	  cp $$ft/model.keras $$ft/fsrcnn_x$$s.keras; \
	  cp $$ft/model.keras train/pretrained/fsrcnn_x$$s.keras; \
	  cp $$ft/report.json train/pretrained/fsrcnn_x$${s}_train_report.json; \
	  $(BIN)/deconv-edge convert $$ft/fsrcnn_x$$s.keras --formats $(SHIP_FORMATS) $(CONVERT_ARGS) --out $$ft/artifacts; \
	  cp $$ft/artifacts/fsrcnn_x$${s}_* edge_runtime/models/; \
	  cp $$ft/artifacts/report.md edge_runtime/models/fsrcnn_x$${s}_report.md; \
	done

models-fast: $(STAMP)
	@test -d $(SHARED)/data/sr/train/t91 || { echo "error: make models-fast needs $(SHARED)/data/sr (set SHARED=DIR)" >&2; exit 2; }
	$(BIN)/deconv-edge train $(TRAIN_DATA) --model fsrcnn-s --activation relu --scale 2 --minutes $(FAST_MINUTES) \
	  --out runs/models/fsrcnn-s_x2 --resume --quiet
	$(BIN)/deconv-edge train $(TRAIN_DATA) --model fsrcnn-s --activation relu --scale 2 \
	  --minutes $(FAST_FINETUNE_MINUTES) --lr 3e-4 --init runs/models/fsrcnn-s_x2/model.keras \
	  --out runs/ft/fsrcnn-s_x2 --resume --quiet
	cp runs/ft/fsrcnn-s_x2/model.keras runs/ft/fsrcnn-s_x2/fsrcnn-s_x2.keras
	cp runs/ft/fsrcnn-s_x2/model.keras train/pretrained/fsrcnn-s_x2.keras
	cp runs/ft/fsrcnn-s_x2/report.json train/pretrained/fsrcnn-s_x2_train_report.json
	$(BIN)/deconv-edge convert runs/ft/fsrcnn-s_x2/fsrcnn-s_x2.keras --formats tflite-int8 $(CONVERT_ARGS) \
	  --out runs/ft/fsrcnn-s_x2/artifacts
	cp runs/ft/fsrcnn-s_x2/artifacts/fsrcnn-s_x2_* edge_runtime/models/
	cp runs/ft/fsrcnn-s_x2/artifacts/report.md edge_runtime/models/fsrcnn-s_x2_report.md

clean:
	rm -rf $(VENV) .venv-runtime .venv-peer demo-out .pytest_cache
