"""Training runs on Keras 3's JAX backend too, and checkpoints move between backends (CPU here).

A GPU box with JAX but no TensorFlow trains; this machine (TensorFlow) resumes, converts and ships.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("keras")
pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                reason="jax is not installed (pip install 'jax[cpu]', part of the [dev] extra)")

# One JAX process: train through the same API the CLI uses, then predict with the saved model.
ON_JAX = """
import sys, numpy as np, keras
from deconv_edge_train.models import ModelConfig
from deconv_edge_train.train import TrainConfig, train
assert keras.backend.backend() == "jax"
cfg = TrainConfig(data=(sys.argv[1],), out=sys.argv[2], steps=4, batch_size=4, lr_patch=16, jitter=False,
                  model=ModelConfig(name="sesr", scale=2, d=8, s=8, m=1, activation="relu"))
report = train(cfg, quiet=True)
model = keras.saving.load_model(sys.argv[2] + "/model.keras", safe_mode=True, compile=False)
x = np.random.default_rng(5).random((1, 19, 23, 1), dtype=np.float32)
np.save(sys.argv[3], np.asarray(model(x)))
print(report["versions"]["keras_backend"], report["steps"])
"""


@pytest.mark.slow
def test_jax_checkpoint_resumes_under_tensorflow_and_models_agree(tmp_path, image_folder):
    import keras

    from deconv_edge_train.models import ModelConfig
    from deconv_edge_train.train import TrainConfig, train

    out = tmp_path / "run"
    script = tmp_path / "on_jax.py"
    script.write_text(ON_JAX)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, str(script), str(image_folder), str(out), str(tmp_path / "jax.npy")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-2:] == ["jax", "4"]

    # The model JAX saved computes the same here, on TensorFlow.
    assert keras.backend.backend() == "tensorflow"
    model = keras.saving.load_model(out / "model.keras", safe_mode=True, compile=False)
    x = np.random.default_rng(5).random((1, 19, 23, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(model(x)), np.load(tmp_path / "jax.npy"), atol=1e-5)

    # TensorFlow resumes the JAX run from its checkpoint (weights and optimizer state), not from scratch.
    cfg = TrainConfig(data=(str(image_folder),), out=str(out), steps=6, batch_size=4, lr_patch=16, jitter=False,
                      model=ModelConfig(name="sesr", scale=2, d=8, s=8, m=1, activation="relu"))
    report = train(cfg, resume=True, quiet=True)
    assert report["versions"]["keras_backend"] == "tensorflow" and report["steps"] == 6
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 6
