"""The trained sources of the shipped models: safe-mode loadable, and the very files the manifests name."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deconv_edge_core.fsutil import sha256_file

from ..conftest import REPO

PRETRAINED = sorted((REPO / "train" / "pretrained").glob("*.keras"))


@pytest.mark.skipif(not PRETRAINED, reason="no pretrained models in train/pretrained")
@pytest.mark.parametrize("path", PRETRAINED, ids=lambda p: p.name)
def test_pretrained_matches_shipped_manifests(path):
    pytest.importorskip("keras")
    from deconv_edge_train.evaluate import load_keras_model, model_scale

    model = load_keras_model(path)
    scale = model_scale(model)
    assert path.stem.endswith(f"_x{scale}")
    manifests = sorted((REPO / "edge_runtime" / "models").glob(f"{path.stem}_*.json"))
    assert manifests, f"no shipped artifact made from {path.name}"
    digest = sha256_file(path)
    for m in manifests:
        data = json.loads(m.read_text())
        assert data["source_model"]["sha256"] == digest, f"{m.name} was made from another {path.name}"
        assert data["scale"] == scale and data["status"] == "passed"
    channels = int(model.inputs[0].shape[-1])  # 2 for a denoiser with a noise-level map
    out = np.asarray(model(np.zeros((1, 8, 8, channels), np.float32)))
    assert out.shape == (1, 8 * scale, 8 * scale, 1)
