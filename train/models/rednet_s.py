"""A faster RED-Net-style denoiser: no feature maps at full resolution.

``rednet`` spends most of its time at full resolution (a 16-channel conv in, a deconvolution and a conv out,
each reading and writing 16 values a pixel). Here the first layer is already the stride-2 convolution and the
last is the stride-2 ``Conv2DTranspose`` that writes the one-channel noise residual, so full resolution only
carries the picture and the residual; the work happens at half and quarter resolution, where wider layers cost
a quarter and a sixteenth as much per pixel (FFDNet's idea, kept as a conv-deconv network with symmetric skips).

Layers (``d`` half-resolution channels, ``m`` 3x3 convs per level, quarter resolution ``2d`` channels with
``m + 1`` convs): ``down_1`` 3x3/2 → ``enc_2_*`` → ``down_2`` 3x3/2 → ``mid_*`` → ``up_2`` (deconv 4x4/2) +
skip → ``dec_2_*`` → ``up_1`` (deconv 4x4/2 to one channel, zero-initialised, so the untrained model is the
identity) → + noisy picture. Receptive radius with (16, 2): 29 pixels (the manifest records it; the runtime's
tiles get that much halo).

Cost with (d, m) = (16, 2): about 5.0k MACs per pixel (``rednet``: 4.6k), all of it at a quarter or a sixteenth
of the pixels. Sides must be multiples of 4 (the runtime and the evaluator pad).
"""

from __future__ import annotations

from . import MODELS
from .base import ModelConfig
from .rednet import denoiser_output

SIZE_MULTIPLE = 4


def _rednet_s(config: ModelConfig, d: int, m: int):
    import keras

    he = keras.initializers.HeNormal(seed=1)

    def conv(x, filters, name, stride=1):
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", kernel_initializer=he, name=name)(x)
        return keras.layers.ReLU(name=f"{name}_act")(x)

    channels = 2 if config.noise_map else 1
    inp = keras.Input(shape=(None, None, channels), name="noisy")
    x = conv(inp, d, "down_1", stride=2)
    for i in range(1, m + 1):
        x = conv(x, d, f"enc_2_{i}")
    e2 = x
    x = conv(e2, 2 * d, "down_2", stride=2)
    for i in range(1, m + 2):
        x = conv(x, 2 * d, f"mid_{i}")
    x = keras.layers.Conv2DTranspose(d, 4, strides=2, padding="same", kernel_initializer=he, name="up_2")(x)
    x = keras.layers.ReLU(name="up_2_act")(keras.layers.Add(name="skip_2")([x, e2]))
    for i in range(1, m + 1):
        x = conv(x, d, f"dec_2_{i}")
    residual = keras.layers.Conv2DTranspose(1, 4, strides=2, padding="same", kernel_initializer="zeros",
                                            name="up_1")(x)
    return denoiser_output(inp, residual, config)


@MODELS.register("rednet-s")
def rednet_s(config: ModelConfig):
    """Fast conv-deconv denoiser (d, m) = (16, 2): everything at half and quarter resolution."""
    return _rednet_s(config, config.d or 16, config.m if config.m is not None else 2)


rednet_s.task = "denoise"
rednet_s.size_multiple = SIZE_MULTIPLE
