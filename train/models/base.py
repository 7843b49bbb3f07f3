"""Model configuration and the shared building blocks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

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
        upsampler_kernel: the deconvolution's kernel size (``None`` = 9, the paper's). The bicubic path needs
            ``4·scale`` taps (11 are non-zero at x3), so 9 cuts its tails at x3/x4; 11 (x3) and 16 (x4) hold
            it whole and give each output pixel more context. 8 at x2 holds it whole with fewer taps than 9.
        noise_map: denoisers only: a second input channel holds the noise level σ/255 (one model for all σ).
        noise: denoisers only: the noise it learns to remove, ``awgn`` (the protocol's) or ``camera``
            (signal-dependent, demosaic-correlated, JPEG'd; :func:`deconv_edge_train.noise.camera_noise`).
            Stored with the model, so the manifest's ``noise.model`` says it.
    """

    name: str = "fsrcnn"
    scale: int = 2
    d: Optional[int] = None
    s: Optional[int] = None
    m: Optional[int] = None
    activation: str = "prelu"
    residual: bool = True
    upsampler_kernel: Optional[int] = None
    noise_map: bool = False
    noise: str = "awgn"

    @property
    def task(self) -> str:
        """The task of the registered model (``super-resolution`` unless the model says otherwise)."""
        from . import MODELS

        return getattr(MODELS.get(self.name), "task", "super-resolution")

    @property
    def kernel(self) -> int:
        """The upsampler's kernel size."""
        return self.upsampler_kernel or UPSAMPLER_KERNEL

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def build_model(config: ModelConfig):
    """Build the Keras model described by ``config``."""
    from deconv_edge_core.errors import UserError

    from ..tasks import TASKS
    from . import MODELS

    TASKS.get(config.task).check_scale(config.scale)
    if config.noise_map and config.task != "denoise":
        raise UserError("a noise-level map input is for denoisers only")
    from ..noise import NOISE_MODELS

    if config.noise not in NOISE_MODELS:
        raise UserError(f"unknown noise '{config.noise}'; valid: {', '.join(NOISE_MODELS)}")
    if config.noise != "awgn" and config.task != "denoise":
        raise UserError("--noise is for denoisers only")
    if config.activation not in ACTIVATIONS:
        raise UserError(f"unknown activation '{config.activation}'; valid: {', '.join(ACTIVATIONS)}")
    if not 2 <= config.kernel <= 32:
        raise UserError(f"--upsampler-kernel must be 2..32, not {config.kernel}")
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


def transfer_weights(src, dst, scale: int) -> list[str]:
    """Copy a trained model's weights into ``dst`` layer by layer (same names), to fine-tune it.

    The upsampler may change kernel size: the old kernel is placed so every tap keeps its meaning
    (output ``y`` reads input ``i`` through tap ``y - i·scale + pad``, ``pad`` from :func:`deconv_offset`), so a
    larger kernel computes exactly what the source did, with the new taps at zero; a smaller one drops the
    outer taps. An upsampler of another scale means something else tap by tap, so ``dst`` keeps its own
    (bicubic at the start): the body is what carries over (SESR starts x3/x4 from the x2 body).

    Returns:
        Names of ``dst`` layers whose weights could not be taken (missing in ``src`` or other shapes).
    """
    src_layers = {layer.name: layer for layer in src.layers}
    skipped = []
    for layer in dst.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        other = src_layers.get(layer.name)
        got = other.get_weights() if other is not None else None
        if other is not None and layer.name == UPSAMPLER_LAYER and tuple(other.strides) != tuple(layer.strides):
            continue
        if got is not None and [w.shape for w in got] == [w.shape for w in weights]:
            layer.set_weights(got)
        elif got is not None and layer.name == UPSAMPLER_LAYER and got[0].shape[2:] == weights[0].shape[2:]:
            k_src, k_dst = got[0].shape[0], weights[0].shape[0]
            shift = deconv_offset(k_dst, scale) - deconv_offset(k_src, scale)
            kernel = np.zeros_like(weights[0])
            for t in range(k_src):
                for u in range(k_src):
                    if 0 <= t + shift < k_dst and 0 <= u + shift < k_dst:
                        kernel[t + shift, u + shift] = got[0][t, u]
            layer.set_weights([kernel] + got[1:])
        else:
            skipped.append(layer.name)
    return skipped
