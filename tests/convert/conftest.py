"""Fixtures for the converter tests: tiny FSRCNN-s models, small picture folders, one converted set.

Everything is built from scikit-image's bundled photographs and seeded weights, so the tests run without
``../shared``; the few that use it skip when it is absent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
#: Calibration crops for the tests (the CLI insists on >= 100; the API allows fewer).
TEST_CALIB_SAMPLES = 24
TEST_CALIB_HW = (24, 24)
#: Fixed input of the Edge TPU test artifacts (small, so the gate's tiles are cheap).
TEST_FIXED_HW = (24, 32)


def run_tflite(data: bytes, x: np.ndarray) -> np.ndarray:
    """A uint8-in/uint8-out ``.tflite`` (bytes) on float input ``x`` through the real interpreter, dequantized."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape), strict=False)
    interp.allocate_tensors()
    s, zp = inp["quantization"]
    interp.set_tensor(inp["index"], np.clip(np.round(x / s) + zp, 0, 255).astype(inp["dtype"]))
    interp.invoke()
    s, zp = out["quantization"]
    return (interp.get_tensor(out["index"]).astype(np.float64) - zp) * s


def tiny_model(scale: int, seed: int = 0):
    """FSRCNN-s (d=8, s=4, m=1) with seeded non-zero upsampler feature taps (untrained, not just bicubic)."""
    from deconv_edge_train.models import ModelConfig, build_model

    model = build_model(ModelConfig(name="fsrcnn-s", scale=scale, d=8, s=4, m=1))
    up = model.get_layer("upsample")
    kernel, bias = up.get_weights()
    rng = np.random.default_rng(seed)
    kernel[..., :-1] = rng.normal(0.0, 0.02, kernel[..., :-1].shape).astype(np.float32)
    up.set_weights([kernel, bias + np.float32(0.01)])
    return model


def _write_pictures(folder: Path, names: tuple, size: int) -> Path:
    import skimage.data as skd
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        img = np.asarray(getattr(skd, name)())
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        h, w = img.shape[:2]
        y, x = (h - size) // 2, (w - size) // 2
        Image.fromarray(np.ascontiguousarray(img[y:y + size, x:x + size, :3])).save(folder / f"{name}.png")
    return folder


@dataclass(frozen=True)
class Data:
    calib: Path
    eval: Path
    model_x2: Path


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Data:
    root = tmp_path_factory.mktemp("convert-data")
    calib = _write_pictures(root / "calib", ("coffee", "chelsea", "rocket"), 96)
    evald = _write_pictures(root / "eval", ("astronaut", "camera"), 64)
    model_path = root / "tiny_x2.keras"
    tiny_model(2).save(str(model_path))
    return Data(calib, evald, model_path)


@pytest.fixture(scope="session")
def tiny_x2():
    return tiny_model(2)


@pytest.fixture(scope="session")
def test_config():
    from deconv_edge_convert.api import ExportConfig

    return ExportConfig(calib_samples=TEST_CALIB_SAMPLES, calib_size_hw=TEST_CALIB_HW, input_size_hw=None)


@pytest.fixture(scope="session")
def converted(tmp_path_factory, data, test_config):
    """The whole ``convert`` run over every registered format (the gate included), done once."""
    import dataclasses

    from deconv_edge_convert.api import convert

    out = tmp_path_factory.mktemp("converted")
    # Lenient PSNR gates: the untrained tiny model is not what the gate thresholds are for.
    cfg = dataclasses.replace(test_config, max_psnr_drop_db=3.0)
    report = convert(data.model_x2, "all", [str(data.calib)], [str(data.eval)], out, cfg)
    return out, report
