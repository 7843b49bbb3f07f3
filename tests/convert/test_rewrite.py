"""The sub-pixel rewrite of the upsampler is exact (no retraining) for every scale."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import tiny_model


def _randomized(scale: int, seed: int):
    model = tiny_model(scale, seed)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("split_concat", [True, False])
def test_subpixel_matches_deconv(scale, split_concat):
    from deconv_edge_convert.rewrite import DepthToSpace, rewrite_upsampler

    model = _randomized(scale, seed=scale)
    x = np.random.default_rng(10 + scale).random((2, 13, 17, 1)).astype(np.float32)
    ref = np.asarray(model(x))
    sub = rewrite_upsampler(model, "subpixel", split_concat)
    assert any(isinstance(layer, DepthToSpace) for layer in sub.layers)
    assert not any(type(layer).__name__ == "Conv2DTranspose" for layer in sub.layers)
    out = np.asarray(sub(x))
    assert out.shape == (2, 13 * scale, 17 * scale, 1)
    assert np.max(np.abs(out - ref)) <= 1e-5


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("form", ["deconv", "subpixel"])
def test_int8_friendly_rewrites_are_exact(scale, form):
    """Split concat and the hi + lo residual weights change nothing in float."""
    from deconv_edge_convert.rewrite import rewrite_upsampler

    model = _randomized(scale, seed=20 + scale)
    x = np.random.default_rng(scale).random((1, 11, 9, 1)).astype(np.float32)
    rewritten = rewrite_upsampler(model, form, split_concat=True, int8_split=True)
    assert any(layer.name.endswith("_hi") for layer in rewritten.layers)
    out = np.asarray(rewritten(x))
    assert np.max(np.abs(out - np.asarray(model(x)))) <= 1e-5


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("form", ["deconv", "subpixel"])
@pytest.mark.parametrize("feature_max", [None, 2.5])
def test_nearest_anchor_rewrite_is_exact(scale, form, feature_max):
    """Nearest neighbour + (LR kernel - nearest) over a concat, features optionally rescaled: same in float."""
    from deconv_edge_convert.rewrite import rewrite_upsampler

    model = _randomized(scale, seed=30 + scale)
    x = np.random.default_rng(scale).random((1, 11, 9, 1)).astype(np.float32)
    rewritten = rewrite_upsampler(model, form, nearest_anchor=True, feature_max=feature_max)
    names = [layer.name for layer in rewritten.layers]
    assert any("nearest" in n for n in names)
    assert any(n.endswith("_rescaled") for n in names) == (feature_max is not None)
    out = np.asarray(rewritten(x))
    assert np.max(np.abs(out - np.asarray(model(x)))) <= 1e-5


def test_nearest_kernel_is_nearest_neighbour():
    from deconv_edge_convert.rewrite import nearest_kernel
    from deconv_edge_train.models.base import deconv_offset

    for scale in (2, 3, 4):
        import keras

        k = 9
        layer = keras.layers.Conv2DTranspose(1, k, strides=scale, padding="same", use_bias=False)
        x = np.random.default_rng(scale).random((1, 5, 6, 1)).astype(np.float32)
        layer.build(x.shape)
        layer.set_weights([nearest_kernel((k, k, 1, 1), scale, "deconv", deconv_offset(k, scale))])
        ref = np.repeat(np.repeat(x, scale, axis=1), scale, axis=2)
        assert np.allclose(np.asarray(layer(x)), ref, atol=1e-6)


def test_int8_grid_split():
    from deconv_edge_convert.rewrite import int8_grid_split

    k = np.random.default_rng(0).normal(size=(5, 5, 1, 4)).astype(np.float32)
    hi, lo = int8_grid_split(k, channel_axis=-1)
    step = np.abs(k).max(axis=(0, 1, 2)) / 127
    assert np.allclose(hi + lo, k, atol=1e-7)
    q = hi / step
    assert np.allclose(q, np.round(q), atol=1e-3) and np.abs(q).max() <= 127 + 1e-3
    assert np.all(np.abs(lo) <= step / 2 + 1e-7)


@pytest.mark.parametrize("scale,size", [(2, 5), (3, 3), (4, 3)])
def test_subpixel_kernel_size(scale, size):
    from deconv_edge_convert.rewrite import SubpixelTaps, subpixel_weights

    assert SubpixelTaps.same(9, scale).size == size
    kernel = np.ones((9, 9, 1, 3), np.float32)
    w, b = subpixel_weights(kernel, np.zeros(1, np.float32), scale)
    assert w.shape == (size, size, 3, scale * scale)
    # Every transposed-convolution tap lands exactly once per output channel.
    assert w.sum() == kernel.sum()


def test_rewrite_rejects_non_same_padding():
    import keras

    from deconv_edge_convert.rewrite import rewrite_upsampler
    from deconv_edge_core.errors import UserError

    inp = keras.Input((None, None, 1))
    out = keras.layers.Conv2DTranspose(1, 9, strides=2, padding="valid", name="upsample")(inp)
    with pytest.raises(UserError, match="padding"):
        rewrite_upsampler(keras.Model(inp, out), "subpixel")


def test_tflite_op_forms(tmp_path, tiny_x2, test_config):
    """Sub-pixel TFLite has DEPTH_TO_SPACE and no TRANSPOSE_CONV; the Edge TPU file the opposite."""
    import dataclasses

    from deconv_edge_convert.api import export_one
    from deconv_edge_convert.tflite_tools import op_names

    sub = op_names(export_one(tiny_x2, "tflite-fp32", tmp_path, test_config).read_bytes())
    assert "DEPTH_TO_SPACE" in sub and "TRANSPOSE_CONV" not in sub
    deconv_cfg = dataclasses.replace(test_config, upsampler="deconv")
    dec = op_names(export_one(tiny_x2, "tflite-fp32", tmp_path / "d", deconv_cfg).read_bytes())
    assert "TRANSPOSE_CONV" in dec and "DEPTH_TO_SPACE" not in dec
