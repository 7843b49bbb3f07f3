# deconv-edge: `make demo` and `make test` set everything up in .venv and run.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Reinstall when the dependency list changes.
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# `make demo` sets up what a device has: the runtime alone (numpy, OpenCV, LiteRT), no TensorFlow.
DEMO_VENV  ?= .venv-demo
DEMO_STAMP := $(DEMO_VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

# The FSRCNN models shipped today (`make models-fsrcnn`): data from ../shared, resumable. Two stages per
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

# The training campaign (train/campaign.py): each run's whole state is committed in train/campaign/<run>/, and
# every `make models` is one more sitting of it, resumed where the last one stopped (on any machine).
SITTING_MINUTES  ?= 150
CAMPAIGN_RUNS    ?= sesr_x2 sesr_x3 sesr_x4 sesr-s_x2
CAMPAIGN_FORMATS ?= tflite-int8,tflite-fp32,edgetpu,onnx-fp32,onnx-int8
# The shipped denoiser: the campaign's rednet_denoise run, gated on Set12 (grey, AWGN sigma 25).
DENOISE_FORMATS  ?= tflite-int8,edgetpu,onnx-fp32
DENOISE_CONVERT_ARGS = --calib $(SHARED)/data/sr/train/t91 --eval $(SHARED)/data/denoise/eval/set12

.PHONY: help setup demo test test-aarch64 test-stacks lint wheel models models-denoise models-fsrcnn models-fast clean

help:
	@echo "make demo   - set up a runtime-only .venv-demo (no TensorFlow) and run the main job on the default model"
	@echo "make wheel  - build dist/deconv_edge-*.whl (installs on a device with no checkout)"
	@echo "make test   - set up .venv and run the test suite"
	@echo "make test-aarch64 - the runtime tests, an offline deploy and a smoke on an emulated Raspberry Pi OS (qemu)"
	@echo "make test-stacks  - runtime tests and smoke on the legacy stack, pyenv 3.8/3.9/3.10, Debian's python3.11"
	@echo "make lint   - ruff"
	@echo "make models - one sitting of the training campaign (resumes train/campaign/), then convert its models"
	@echo "make models-denoise - one sitting of the denoiser's campaign run, converted and copied to edge_runtime/models"
	@echo "make models-fsrcnn - retrain and reconvert the shipped FSRCNN x2/x3/x4 models from ../shared (resumable)"
	@echo "make models-fast - the same for the fast x2 model (FSRCNN-s)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[train,dev]'
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

$(DEMO_STAMP): pyproject.toml
	test -x $(DEMO_VENV)/bin/python || $(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[edge]'
	rm -f $(DEMO_VENV)/.installed-*
	touch $@

# The main job: the live-camera loop on the built-in moving scene with the shipped default x2 model.
demo: $(DEMO_STAMP)
	mkdir -p demo-out
	$(DEMO_VENV)/bin/deconv-edge doctor
	$(DEMO_VENV)/bin/deconv-edge camera --source demo:// --sink demo-out/camera_x2.mp4 --max-frames 300 \
		--stats-json demo-out/camera-stats.json
	# Denoising: the scene with sigma 25 noise, noisy | denoised side by side.
	$(DEMO_VENV)/bin/deconv-edge camera --source 'demo://?noise=25' --task denoise --compare \
		--sink demo-out/camera_denoise.mp4 --max-frames 150 --stats-json demo-out/camera-denoise-stats.json
	@echo "wrote demo-out/camera_x2.mp4, demo-out/camera_denoise.mp4 and their stats"

test: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -q
	# The runtime tests again, in a device-like venv where `import tensorflow` fails.
	bash tests/runtime_only.sh

# Emulated Raspberry Pi OS Bookworm (aarch64 Debian userland + qemu-user 10), downloads cached in
# ~/.cache/deconv-edge/aarch64 (see tests/aarch64/run.sh).
test-aarch64: $(STAMP)
	HOST_PYTHON=$(BIN)/python bash tests/aarch64/run.sh

test-stacks:
	bash tests/stacks.sh

# A wheel of this checkout (shipped models included) for devices: pip install 'dist/deconv_edge-*.whl[edge]'.
wheel:
	$(PYTHON) -m edge_runtime.ship.wheelhouse dist

lint: $(STAMP)
	$(BIN)/ruff check core train convert edge_runtime tests benchmarks

models: $(STAMP)
	@test -d $(SHARED)/data/sr/train/t91 || { echo "error: make models needs $(SHARED)/data/sr (set SHARED=DIR)" >&2; exit 2; }
	$(BIN)/deconv-edge campaign --shared $(SHARED) --sitting-minutes $(SITTING_MINUTES) --quiet
	$(BIN)/deconv-edge campaign --status
	set -e; mkdir -p runs/campaign; for r in $(CAMPAIGN_RUNS); do \
	  test -f train/campaign/$$r/model.keras || continue; \
	  cp train/campaign/$$r/model.keras runs/campaign/$$r.keras; \
	  $(BIN)/deconv-edge convert runs/campaign/$$r.keras --formats $(CAMPAIGN_FORMATS) $(CONVERT_ARGS) \
	    --out runs/campaign/$$r-artifacts; \
	done
	@echo "campaign models converted in runs/campaign/*-artifacts (copy to edge_runtime/models to ship)"

models-denoise: $(STAMP)
	@test -d $(SHARED)/data/sr/train/t91 || { echo "error: make models-denoise needs $(SHARED)/data (set SHARED=DIR)" >&2; exit 2; }
	$(BIN)/deconv-edge campaign --shared $(SHARED) --sitting-minutes $(SITTING_MINUTES) --runs rednet_denoise --quiet
	set -e; mkdir -p runs/campaign; cp train/campaign/rednet_denoise/model.keras runs/campaign/rednet_x1.keras; \
	  $(BIN)/deconv-edge convert runs/campaign/rednet_x1.keras --formats $(DENOISE_FORMATS) $(DENOISE_CONVERT_ARGS) \
	    --out runs/campaign/rednet_x1-artifacts; \
	  cp runs/campaign/rednet_x1-artifacts/rednet_x1_* edge_runtime/models/
	@echo "shipped: edge_runtime/models/rednet_x1_* ('deconv-edge models' lists them)"

models-fsrcnn: $(STAMP)
	@test -d $(SHARED)/data/sr/train/t91 || { echo "error: make models-fsrcnn needs $(SHARED)/data/sr (set SHARED=DIR)" >&2; exit 2; }
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
	rm -rf $(VENV) .venv-runtime .venv-peer .venv-stack-* .aarch64 $(DEMO_VENV) demo-out dist .pytest_cache
