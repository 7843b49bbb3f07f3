"""Model registry, shapes, the residual bicubic initialisation, and safe-mode save/load."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edge_runtime.errors import UserError  # noqa: E402
from train.models import MODELS, ModelConfig, build_model  # noqa: E402
from train.models.base import UPSAMPLER_LAYER  # noqa: E402
from train.protocol import imresize  # noqa: E402


def _small(name: str, scale: int, **kw) -> ModelConfig:
    return ModelConfig(name=name, scale=scale, d=8, s=4, m=1, **kw)


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shape_16_to_scale(name, scale):
    model = build_model(_small(name, scale))
    out = model(np.random.default_rng(0).random((2, 16, 16, 1), dtype=np.float32))
    assert tuple(out.shape) == (2, 16 * scale, 16 * scale, 1)
    up = model.get_layer(UPSAMPLER_LAYER)
    assert isinstance(up, keras.layers.Conv2DTranspose) and up.kernel_size == (9, 9) and up.strides == (scale, scale)


@pytest.mark.parametrize("name", MODELS.names())
def test_default_sizes_follow_the_paper(name):
    model = build_model(ModelConfig(name=name, scale=2))
    expected = {"fsrcnn": (56, 12, 4), "fsrcnn-s": (32, 5, 1)}[name]
    assert model.get_layer("feature").filters == expected[0]
    assert model.get_layer("shrink").filters == expected[1]
    assert sum(1 for layer in model.layers if layer.name.startswith("map_") and not layer.name.endswith("_act")) == expected[2]


def test_any_input_size():
    model = build_model(_small("fsrcnn", 3))
    assert tuple(model(np.zeros((1, 13, 21, 1), np.float32)).shape) == (1, 39, 63, 1)


def test_residual_model_starts_as_bicubic():
    """x2: the deconvolution's extra channel is exactly Pillow/MATLAB bicubic upscaling away from borders."""
    rng = np.random.default_rng(1)
    lr = rng.random((20, 24), dtype=np.float32)
    model = build_model(ModelConfig(name="fsrcnn", scale=2))
    out = np.asarray(model(lr[None, :, :, None]))[0, :, :, 0]
    ref = imresize(lr, (40, 48))
    np.testing.assert_allclose(out[8:-8, 8:-8], ref[8:-8, 8:-8], atol=1e-5)


@pytest.mark.parametrize("activation", ["prelu", "relu"])
def test_save_load_safe_mode_identical(tmp_path, activation):
    model = build_model(_small("fsrcnn", 2, activation=activation))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    x = np.random.default_rng(2).random((1, 16, 16, 1), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(loaded(x)))


def test_unknown_model_and_activation_list_valid_ones():
    with pytest.raises(UserError, match="valid: fsrcnn, fsrcnn-s"):
        build_model(ModelConfig(name="srgan"))
    with pytest.raises(UserError, match="prelu"):
        build_model(ModelConfig(activation="gelu"))
    with pytest.raises(UserError, match="2, 3, 4"):
        build_model(ModelConfig(scale=5))


@pytest.mark.parametrize("scale,kernel", [(2, 8), (3, 11), (4, 16)])
def test_whole_bicubic_upsampler_kernels(scale, kernel):
    """With 4·scale taps (11 non-zero at x3) the residual model starts as exact bicubic at every scale."""
    rng = np.random.default_rng(scale)
    lr = rng.random((20, 24), dtype=np.float32)
    model = build_model(ModelConfig(name="fsrcnn", scale=scale, upsampler_kernel=kernel))
    assert model.get_layer(UPSAMPLER_LAYER).kernel_size == (kernel, kernel)
    out = np.asarray(model(lr[None, :, :, None]))[0, :, :, 0]
    ref = imresize(lr, (20 * scale, 24 * scale))
    b = 4 * scale
    np.testing.assert_allclose(out[b:-b, b:-b], ref[b:-b, b:-b], atol=1e-5)


@pytest.mark.parametrize("scale,kernel", [(3, 11), (4, 16)])
def test_transfer_weights_into_a_larger_upsampler_is_exact(scale, kernel):
    from train.models.base import transfer_weights

    src = build_model(_small("fsrcnn", scale))
    rng = np.random.default_rng(scale)
    src.set_weights([rng.normal(0, 0.2, w.shape).astype(np.float32) for w in src.get_weights()])
    dst = build_model(_small("fsrcnn", scale, upsampler_kernel=kernel))
    assert transfer_weights(src, dst, scale) == []
    x = rng.random((1, 13, 11, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(dst(x)), np.asarray(src(x)), atol=1e-5)
    # Other shapes elsewhere are reported, not silently skipped.
    assert transfer_weights(src, build_model(ModelConfig(name="fsrcnn", scale=scale, d=8, s=5, m=1)), scale)
