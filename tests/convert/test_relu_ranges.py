"""``tighten_relu_add_inputs``: the inputs of ADD + ReLU get grids no wider than a positive sum can use."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="converting to TFLite needs TensorFlow (the [train] extra)")

from .conftest import run_tflite  # noqa: E402


def _model():
    """``relu(a + b)``: ``a`` a conv whose calibrated range reaches far below ``-max(b)``, ``b`` a ReLU skip."""
    import keras

    x = keras.Input((None, None, 1))
    a = keras.layers.Conv2D(4, 3, padding="same", name="wide")(x)
    b = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="skip")(x)
    y = keras.layers.ReLU()(keras.layers.Add()([a, b]))
    m = keras.Model(x, keras.layers.Conv2D(1, 1, name="out")(y))
    rng = np.random.default_rng(0)
    wide, skip, out = (m.get_layer(n) for n in ("wide", "skip", "out"))
    wide.set_weights([rng.normal(0, 1.0, (3, 3, 1, 4)).astype(np.float32), np.array([-4, -3, 1, 0], np.float32)])
    skip.set_weights([rng.normal(0, 0.1, (3, 3, 1, 4)).astype(np.float32), np.full(4, 0.2, np.float32)])
    out.set_weights([rng.normal(0, 0.5, (1, 1, 4, 1)).astype(np.float32), np.zeros(1, np.float32)])
    return m




def test_the_wide_input_is_narrowed_to_what_reaches_the_relu_and_the_error_drops():
    from deconv_edge_convert import tflite_tools

    model = _model()
    rng = np.random.default_rng(1)
    samples = [rng.random((1, 16, 16, 1), dtype=np.float32) for _ in range(16)]
    data = tflite_tools.convert(model, (1, None, None, 1), mode="int8", representative=lambda: ([s] for s in samples))
    tight, notes = tflite_tools.tighten_relu_add_inputs(data)
    assert len(notes) == 1 and "'" in notes[0] and "narrowed" in notes[0]
    # The skip's own grid is untouched; a second pass finds nothing left to narrow.
    assert tflite_tools.tighten_relu_add_inputs(tight) == (tight, [])

    x = rng.random((1, 32, 32, 1), dtype=np.float32)
    want = np.asarray(model(x))
    err_before = np.mean(np.abs(run_tflite(data, x) - want))
    err_after = np.mean(np.abs(run_tflite(tight, x) - want))
    assert err_after < 0.8 * err_before


def test_nothing_changes_without_an_add_relu():
    import keras

    from deconv_edge_convert import tflite_tools

    x = keras.Input((None, None, 1))
    model = keras.Model(x, keras.layers.Conv2D(1, 3, padding="same")(x))
    samples = [np.random.default_rng(2).random((1, 8, 8, 1), dtype=np.float32)]
    data = tflite_tools.convert(model, (1, None, None, 1), mode="int8", representative=lambda: ([s] for s in samples))
    assert tflite_tools.tighten_relu_add_inputs(data) == (data, [])
