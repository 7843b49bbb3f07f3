"""Model registry, shapes, the residual bicubic initialisation, and safe-mode save/load."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from deconv_edge_core.errors import UserError  # noqa: E402
from deconv_edge_train.models import MODELS, ModelConfig, build_model, names_for  # noqa: E402
from deconv_edge_train.models.base import UPSAMPLER_LAYER  # noqa: E402
from deconv_edge_train.protocol import imresize  # noqa: E402


def _small(name: str, scale: int, **kw) -> ModelConfig:
    return ModelConfig(name=name, scale=scale, d=8, s=4, m=1, **kw)


@pytest.mark.parametrize("name", names_for("super-resolution"))
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shape_16_to_scale(name, scale):
    model = build_model(_small(name, scale))
    out = model(np.random.default_rng(0).random((2, 16, 16, 1), dtype=np.float32))
    assert tuple(out.shape) == (2, 16 * scale, 16 * scale, 1)
    up = model.get_layer(UPSAMPLER_LAYER)
    assert isinstance(up, keras.layers.Conv2DTranspose) and up.kernel_size == (9, 9) and up.strides == (scale, scale)


@pytest.mark.parametrize("name", names_for("super-resolution"))
def test_default_sizes_follow_the_paper(name):
    model = build_model(ModelConfig(name=name, scale=2))
    expected = {"fsrcnn": (56, 12, 4), "fsrcnn-s": (32, 5, 1), "sesr": (16, None, 5), "sesr-s": (16, None, 2)}[name]
    assert model.get_layer("feature").filters == expected[0]
    if expected[1] is not None:
        assert model.get_layer("shrink").filters == expected[1]
    assert sum(1 for layer in model.layers if layer.name.startswith("map_") and not layer.name.endswith("_act")) == expected[2]


def test_any_input_size():
    model = build_model(_small("fsrcnn", 3))
    assert tuple(model(np.zeros((1, 13, 21, 1), np.float32)).shape) == (1, 39, 63, 1)


@pytest.mark.parametrize("name", names_for("super-resolution"))
def test_residual_model_starts_as_bicubic(name):
    """x2: the deconvolution's extra channel is exactly Pillow/MATLAB bicubic upscaling away from borders."""
    rng = np.random.default_rng(1)
    lr = rng.random((20, 24), dtype=np.float32)
    model = build_model(ModelConfig(name=name, scale=2))
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
    with pytest.raises(UserError, match="valid: fsrcnn, fsrcnn-s, rednet, rednet-s, sesr, sesr-s"):
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
    from deconv_edge_train.models.base import transfer_weights

    src = build_model(_small("fsrcnn", scale))
    rng = np.random.default_rng(scale)
    src.set_weights([rng.normal(0, 0.2, w.shape).astype(np.float32) for w in src.get_weights()])
    dst = build_model(_small("fsrcnn", scale, upsampler_kernel=kernel))
    assert transfer_weights(src, dst, scale) == []
    x = rng.random((1, 13, 11, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(dst(x)), np.asarray(src(x)), atol=1e-5)
    # Other shapes elsewhere are reported, not silently skipped.
    assert transfer_weights(src, build_model(ModelConfig(name="fsrcnn", scale=scale, d=8, s=5, m=1)), scale)


@pytest.mark.parametrize("name", list(MODELS.names()))
def test_receptive_radius_covers_what_the_output_depends_on(name):
    """The radius convert records (the runtime's tile halo) is never less than the gradient's reach, and not
    far over it: a centre output pixel of a random-weight model, differentiated against the input."""
    import tensorflow as tf

    from deconv_edge_train.models.receptive import receptive_radius_px

    task = getattr(MODELS.get(name), "task", "super-resolution")
    cfg = ModelConfig(name=name, scale=1 if task == "denoise" else 2, activation="relu",
                      noise_map=task == "denoise")
    model = build_model(cfg)
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if layer.trainable and layer.get_weights():
            layer.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in layer.get_weights()])
    n = 96
    x = tf.Variable(rng.random((1, n, n, int(model.inputs[0].shape[-1])), dtype=np.float32))
    with tf.GradientTape() as tape:
        centre = model(x)[0, n * cfg.scale // 2, n * cfg.scale // 2, 0]
    ys, xs = np.nonzero(np.abs(tape.gradient(centre, x).numpy()[0]).sum(-1))
    reach = int(max(np.abs(ys - n // 2).max(), np.abs(xs - n // 2).max()))
    radius = receptive_radius_px(model)
    assert reach <= radius <= reach + 4, (reach, radius)


def test_macs_count_each_level_at_its_own_resolution():
    """FSRCNN works at low resolution throughout; RED-Net's stride-2 levels cost a quarter and a sixteenth."""
    from deconv_edge_train.models.receptive import macs_per_input_pixel

    assert macs_per_input_pixel(build_model(ModelConfig(name="fsrcnn", scale=2))) == 12545
    # enc_1 9·2·16 + down_1 9·16·16/4 + enc_2 9·16·16/4 + down_2 9·16·32/16 + mid 9·32·32/16
    # + up_2 16·32·16/16 + dec_2 9·16·16/4 + up_1 16·16·16/4 + residual 9·16 + picture 2
    want = 288 + 576 + 576 + 288 + 576 + 512 + 576 + 1024 + 144 + 2
    assert macs_per_input_pixel(build_model(ModelConfig(name="rednet", scale=1, noise_map=True))) == want
