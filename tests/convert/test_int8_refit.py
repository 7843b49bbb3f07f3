"""``refit_output_convs``: the output convolution's int8 weights are refitted to the float model, nothing else."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="converting to TFLite needs TensorFlow (the [train] extra)")

from .conftest import run_tflite  # noqa: E402


def _model(read_features: bool = True):
    """Features (conv + ReLU) joined with the picture, then a linear output conv (the upsampler's shape)."""
    import keras

    x = keras.Input((None, None, 1))
    f = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="features")(x)
    f = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="body")(f)
    joined = keras.layers.Concatenate(name="join")([f, x]) if read_features else x
    y = keras.layers.Conv2D(1, 3, padding="same", name="out_conv")(joined)
    m = keras.Model(x, y)
    rng = np.random.default_rng(0)
    for layer in m.layers:
        if layer.weights:
            layer.set_weights([rng.normal(0, 0.4, w.shape).astype(np.float32) for w in layer.get_weights()])
    return m


def _pictures(n: int, seed: int) -> list:
    """Smooth random pictures (sums of a few waves), 0..1."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:24, 0:24] / 24.0
    out = []
    for _ in range(n):
        img = sum(np.sin(2 * np.pi * (rng.uniform(0.5, 3) * xx + rng.uniform(0.5, 3) * yy + rng.random()))
                  for _ in range(3))
        out.append(((img - img.min()) / (np.ptp(img) + 1e-9))[None, :, :, None].astype(np.float32))
    return out




def _convert(model, samples) -> bytes:
    from deconv_edge_convert import tflite_tools

    return tflite_tools.convert(model, (1, None, None, 1), mode="int8", representative=lambda: ([s] for s in samples))


def _quantization(data: bytes) -> list:
    from tensorflow.lite.tools import flatbuffer_utils

    sg = flatbuffer_utils.read_model_from_bytearray(bytearray(data)).subgraphs[0]
    return [(t.name, None if t.quantization is None or t.quantization.scale is None else
             tuple(np.asarray(t.quantization.scale).tolist())) for t in sg.tensors]


def test_the_output_conv_is_refitted_and_the_error_against_float_drops_on_other_pictures():
    from deconv_edge_convert import tflite_tools
    from deconv_edge_convert.int8_refit import refit_output_convs

    model = _model()
    calib = _pictures(24, seed=1)
    data = _convert(model, calib)
    refit, notes = refit_output_convs(data, model, calib)
    assert len(notes) == 1 and "'" in notes[0] and "out_conv" in notes[0] and "refitted" in notes[0]
    # Same graph, same grids: only the weight and bias bytes of that conv differ.
    assert tflite_tools.op_names(refit) == tflite_tools.op_names(data)
    assert _quantization(refit) == _quantization(data)
    assert refit != data
    held_out = _pictures(8, seed=2)
    err = {name: np.mean([np.mean((run_tflite(d, x) - np.asarray(model(x))) ** 2) for x in held_out])
           for name, d in (("before", data), ("after", refit))}
    assert err["after"] < 0.9 * err["before"], err


def test_a_conv_that_reads_only_the_picture_is_left_alone():
    from deconv_edge_convert.int8_refit import refit_output_convs

    model = _model(read_features=False)
    calib = _pictures(8, seed=3)
    data = _convert(model, calib)
    assert refit_output_convs(data, model, calib) == (data, [])


def test_export_refits_by_default_and_not_with_refit_off(tmp_path, test_config, data):
    """Through the exporter, on the int8 upsampler form it keeps (ReLU: the emulation has no PReLU)."""
    import dataclasses

    from deconv_edge_convert.api import export_one
    from deconv_edge_core.manifest import load_manifest
    from deconv_edge_train.models import ModelConfig, build_model

    model = build_model(ModelConfig(name="fsrcnn-s", scale=2, d=8, s=4, m=1, activation="relu"))
    up = model.get_layer("upsample")
    kernel, bias = up.get_weights()
    kernel[..., :-1] = np.random.default_rng(0).normal(0.0, 0.02, kernel[..., :-1].shape).astype(np.float32)
    up.set_weights([kernel, bias])
    notes = {}
    for value in ("on", "off"):
        cfg = dataclasses.replace(test_config, options=(("tflite-int8", "refit", value),))
        path = export_one(model, "tflite-int8", tmp_path / value, cfg, calib=[data.calib])
        notes[value] = [n for n in load_manifest(path)[0].extra["notes"] if "refitted" in n]
    assert len(notes["on"]) == 1 and notes["off"] == []
