"""RED-Net-style denoiser (Mao, Shen & Yang, NIPS 2016): conv encoder, Conv2DTranspose decoder, symmetric skips.

Two stride-2 convolutions take the picture to a quarter of its size, where most of the work happens cheaply;
two stride-2 ``Conv2DTranspose`` layers (``up_2``, ``up_1``) bring it back, each added to the encoder features
of the same size (the symmetric skips). The last 3x3 convolution predicts the *noise residual* and starts at
zero, so the untrained model outputs its input (as the SR models start at bicubic).

With ``noise_map=True`` the input has a second channel, the noise level σ/255 everywhere (FFDNet-style): one
model for every σ, and the runtime's ``--strength`` sets that channel.

Frames must be a multiple of 4 on each side (two stride-2 levels); the evaluator and the runtime pad.
Cost with (d, m) = (16, 1): about 4.6k MACs per pixel.
"""

from __future__ import annotations

import numpy as np

from . import MODELS
from .base import ModelConfig

SIZE_MULTIPLE = 4


def _rednet(config: ModelConfig, d: int, m: int):
    import keras

    he = keras.initializers.HeNormal(seed=1)

    def conv(x, filters, name, stride=1, act=True):
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", kernel_initializer=he, name=name)(x)
        return keras.layers.ReLU(name=f"{name}_act")(x) if act else x

    channels = 2 if config.noise_map else 1
    inp = keras.Input(shape=(None, None, channels), name="noisy")
    e1 = conv(inp, d, "enc_1")
    x = conv(e1, d, "down_1", stride=2)
    for i in range(1, m + 1):
        x = conv(x, d, f"enc_2_{i}")
    e2 = x
    x = conv(e2, 2 * d, "down_2", stride=2)
    for i in range(1, m + 1):
        x = conv(x, 2 * d, f"mid_{i}")
    x = keras.layers.Conv2DTranspose(d, 4, strides=2, padding="same", kernel_initializer=he, name="up_2")(x)
    x = keras.layers.ReLU(name="up_2_act")(keras.layers.Add(name="skip_2")([x, e2]))
    for i in range(1, m + 1):
        x = conv(x, d, f"dec_2_{i}")
    x = keras.layers.Conv2DTranspose(d, 4, strides=2, padding="same", kernel_initializer=he, name="up_1")(x)
    x = keras.layers.ReLU(name="up_1_act")(keras.layers.Add(name="skip_1")([x, e1]))
    residual = keras.layers.Conv2D(1, 3, padding="same", kernel_initializer="zeros", name="residual")(x)
    return denoiser_output(inp, residual, config)


def denoiser_output(inp, residual, config: ModelConfig):
    """The model: the noisy picture plus the predicted residual (named ``denoised``, what convert looks for)."""
    import keras

    if int(inp.shape[-1]) == 1:
        picture = inp
    else:
        # The noisy picture is channel 0; a fixed 1x1 conv picks it (a stock layer, unlike a Lambda slice,
        # so the model stays safe-mode loadable and converts everywhere).
        pick = keras.layers.Conv2D(1, 1, use_bias=False, trainable=False, name="picture")
        picture = pick(inp)
        pick.set_weights([np.array([1.0, 0.0], np.float32).reshape(1, 1, 2, 1)])
    out = keras.layers.Add(name="denoised")([picture, residual])
    return keras.Model(inp, out, name=f"{config.name}_x1")


@MODELS.register("rednet")
def rednet(config: ModelConfig):
    """Conv-deconv denoiser (d, m) = (16, 1): strided convs down, Conv2DTranspose up, symmetric skips."""
    return _rednet(config, config.d or 16, config.m if config.m is not None else 1)


rednet.task = "denoise"
rednet.size_multiple = SIZE_MULTIPLE
