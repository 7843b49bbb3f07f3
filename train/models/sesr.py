"""SESR-like body (Bhardwaj et al., MLSys 2022) feeding our deconvolution upsampler.

``feature``: 3x3 collapsible block 1 → ``d`` (16), activation; ``map_1..map_m`` (m = 5): 3x3 collapsible blocks
``d`` → ``d`` with an identity branch, each followed by the activation; then, as every deconv-edge model, the
low-resolution input is concatenated to the features and one ``Conv2DTranspose`` (``upsample``) makes the
high-resolution picture, its input channel starting as bicubic interpolation (the model starts at bicubic).

Differences from SESR, and why:

- SESR ends in a 5x5 conv to ``scale²`` channels and depth-to-space; ours ends in the deconvolution (our
  identity: the converters rewrite it exactly to that sub-pixel form for CPUs, and keep it for the Edge TPU).
- SESR's long skip (first features added to the body's output) is left out: the bicubic channel already
  carries the picture, and the features reaching the upsampler stay ``conv → activation``, which the int8
  anchor form can rescale exactly (``convert.rewrite._rescaled_features``).
- A 3x3 input conv instead of 5x5: measured faster on AVX2 at about the same cost (issue 11's table).

Cost at x2 with the 9-tap upsampler: 144 + 5·2304 + 17·81 = 13,041 MACs per LR pixel (FSRCNN: 13.6k).

``sesr`` is (d, m) = (16, 5); ``sesr-s`` is (16, 2), the fast variant. ``s`` sets the expansion width of
the collapsible blocks (default 64), which changes training only: the exported model is the same size.
"""

from __future__ import annotations

import numpy as np

from . import MODELS
from .base import UPSAMPLER_LAYER, ModelConfig, bicubic_deconv_kernel
from .blocks import CollapsibleConv2D
from .fsrcnn import _act

DEFAULT_EXPANSION = 64


def _sesr(config: ModelConfig, d: int, m: int):
    import keras

    expansion = config.s or DEFAULT_EXPANSION
    inp = keras.Input(shape=(None, None, 1), name="lr")
    x = CollapsibleConv2D(d, 3, expansion=expansion, identity=False, seed=1, name="feature")(inp)
    x = _act(keras, config.activation, "feature_act")(x)
    for i in range(1, m + 1):
        x = CollapsibleConv2D(d, 3, expansion=expansion, identity=True, seed=1 + 2 * i, name=f"map_{i}")(x)
        x = _act(keras, config.activation, f"map_{i}_act")(x)
    if config.residual:
        x = keras.layers.Concatenate(axis=-1, name="concat_lr")([x, inp])
    up = keras.layers.Conv2DTranspose(
        1, config.kernel, strides=config.scale, padding="same",
        # Feature taps start at zero so the model starts as bicubic (see fsrcnn.py).
        kernel_initializer=(
            keras.initializers.Zeros() if config.residual else keras.initializers.RandomNormal(stddev=1e-3, seed=2)
        ),
        name=UPSAMPLER_LAYER,
    )
    out = up(x)
    if config.residual:
        kernel, bias = up.get_weights()
        kernel[:, :, 0, -1] = bicubic_deconv_kernel(config.scale, config.kernel)
        up.set_weights([kernel, np.zeros_like(bias)])
    return keras.Model(inp, out, name=f"{config.name}_x{config.scale}")


@MODELS.register("sesr")
def sesr(config: ModelConfig):
    """SESR-like body (d, m) = (16, 5) + deconvolution upsampler (13.0k MACs per LR pixel at x2)."""
    return _sesr(config, config.d or 16, config.m if config.m is not None else 5)


@MODELS.register("sesr-s")
def sesr_s(config: ModelConfig):
    """The fast variant, (d, m) = (16, 2) (6.1k MACs per LR pixel at x2)."""
    return _sesr(config, config.d or 16, config.m if config.m is not None else 2)
