"""FSRCNN (Dong, Loy & Tang, ECCV 2016): conv feature extraction → shrink → mapping → expand → deconvolution.

``fsrcnn`` defaults to (d, s, m) = (56, 12, 4) as in the paper, ``fsrcnn-s`` to (32, 5, 1).
With ``residual=True`` (our default) the low-resolution input is concatenated to the expanded features and
fed to the same ``Conv2DTranspose``; that extra channel's kernel starts as bicubic interpolation, so the
model begins at bicubic quality and learns only the residual (one layer, nothing extra to export).
"""

from __future__ import annotations

import numpy as np

from . import MODELS
from .base import UPSAMPLER_LAYER, ModelConfig, bicubic_deconv_kernel


def _act(keras, kind: str, name: str):
    if kind == "prelu":
        # One slope per channel (shared over space) keeps it fully convolutional.
        return keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25), shared_axes=[1, 2], name=name)
    if kind == "relu6":
        return keras.layers.ReLU(max_value=6.0, name=name)
    return keras.layers.ReLU(name=name)


def _fsrcnn(config: ModelConfig, d: int, s: int, m: int):
    import keras

    he = keras.initializers.HeNormal(seed=1)
    inp = keras.Input(shape=(None, None, 1), name="lr")
    x = keras.layers.Conv2D(d, 5, padding="same", kernel_initializer=he, name="feature")(inp)
    x = _act(keras, config.activation, "feature_act")(x)
    x = keras.layers.Conv2D(s, 1, padding="same", kernel_initializer=he, name="shrink")(x)
    x = _act(keras, config.activation, "shrink_act")(x)
    for i in range(1, m + 1):
        x = keras.layers.Conv2D(s, 3, padding="same", kernel_initializer=he, name=f"map_{i}")(x)
        x = _act(keras, config.activation, f"map_{i}_act")(x)
    x = keras.layers.Conv2D(d, 1, padding="same", kernel_initializer=he, name="expand")(x)
    x = _act(keras, config.activation, "expand_act")(x)
    if config.residual:
        x = keras.layers.Concatenate(axis=-1, name="concat_lr")([x, inp])
    up = keras.layers.Conv2DTranspose(
        1,
        config.kernel,
        strides=config.scale,
        padding="same",
        # The paper initialises the deconvolution with N(0, 0.001). With the residual path even that much
        # noise costs ~15 dB at step 0, so the feature taps start at zero: the model starts as bicubic.
        kernel_initializer=(
            keras.initializers.Zeros() if config.residual else keras.initializers.RandomNormal(stddev=1e-3, seed=2)
        ),
        name=UPSAMPLER_LAYER,
    )
    out = up(x)
    if config.residual:
        kernel, bias = up.get_weights()  # kernel: (k, k, out=1, in=d+1)
        kernel[:, :, 0, -1] = bicubic_deconv_kernel(config.scale, config.kernel)
        up.set_weights([kernel, np.zeros_like(bias)])
    return keras.Model(inp, out, name=f"{config.name}_x{config.scale}")


@MODELS.register("fsrcnn")
def fsrcnn(config: ModelConfig):
    """FSRCNN(d, s, m), default (56, 12, 4)."""
    return _fsrcnn(config, config.d or 56, config.s or 12, config.m if config.m is not None else 4)


@MODELS.register("fsrcnn-s")
def fsrcnn_s(config: ModelConfig):
    """FSRCNN-s, default (32, 5, 1): the paper's real-time variant."""
    return _fsrcnn(config, config.d or 32, config.s or 5, config.m if config.m is not None else 1)
