"""Model configuration and the shared building blocks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..protocol import check_scale

UPSAMPLER_LAYER = "upsample"
UPSAMPLER_KERNEL = 9
ACTIVATIONS = ("prelu", "relu", "relu6")


@dataclass(frozen=True)
class ModelConfig:
    """What a model is: enough to rebuild it, stored in ``report.json`` and manifests.

    Attributes:
        name: registry key (``fsrcnn``, ``fsrcnn-s``).
        scale: 2, 3 or 4.
        d: feature channels; s: shrunk channels; m: mapping layers (``None`` = the model's default).
        activation: ``prelu`` (paper) or ``relu``/``relu6`` (quantization friendly).
        residual: feed the low-resolution input to the deconvolution as one extra channel whose
            kernel starts as bicubic interpolation, so the network learns the residual.
    """

    name: str = "fsrcnn"
    scale: int = 2
    d: Optional[int] = None
    s: Optional[int] = None
    m: Optional[int] = None
    activation: str = "prelu"
    residual: bool = True

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def build_model(config: ModelConfig):
    """Build the Keras model described by ``config``."""
    from edge_runtime.errors import UserError

    from . import MODELS

    check_scale(config.scale)
    if config.activation not in ACTIVATIONS:
        raise UserError(f"unknown activation '{config.activation}'; valid: {', '.join(ACTIVATIONS)}")
    return MODELS.get(config.name)(config)


def cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (MATLAB/Pillow bicubic uses a = -0.5)."""
    x = np.abs(x)
    return np.where(
        x <= 1,
        (a + 2) * x**3 - (a + 3) * x**2 + 1,
        np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a, 0.0),
    )


def deconv_offset(kernel: int, stride: int) -> int:
    """Where Keras/TF ``Conv2DTranspose(padding='same')`` puts tap 0 relative to ``i * stride``.

    The layer is the gradient of a 'same' strided convolution, whose leading pad is
    ``max(kernel - stride, 0) // 2``: output ``y`` receives input ``i`` through tap ``y - i*stride + pad``.
    """
    return max(kernel - stride, 0) // 2


def bicubic_deconv_kernel(scale: int, kernel: int = UPSAMPLER_KERNEL) -> np.ndarray:
    """(kernel, kernel) weights making ``Conv2DTranspose(stride=scale, 'same')`` a bicubic upscaler.

    Output pixel ``y`` sits at ``(y + 0.5) / scale - 0.5`` in input coordinates (pixel centres, as
    MATLAB/Pillow). For scale 3 and 4 the cubic's support (4·scale taps) is longer than the kernel, so the
    tails are cut and each output phase is renormalised to sum to 1; training refines it.
    """
    off = deconv_offset(kernel, scale)
    taps = np.arange(kernel)
    k1 = cubic((taps - off + 0.5) / scale - 0.5)
    for phase in range(scale):
        sel = (taps - off) % scale == phase
        total = k1[sel].sum()
        if total != 0:
            k1[sel] /= total
    return np.outer(k1, k1).astype(np.float32)
