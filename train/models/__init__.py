"""Model registry: ``MODELS.get(name)(config)`` builds a Keras model; ``names_for(task)`` lists a task's models.

Every super-resolution model maps a one-channel luma image (float 0..1, any size) to the upscaled luma, and ends
in a ``Conv2DTranspose`` upsampler named ``upsample`` (the layer ``convert`` rewrites to sub-pixel form). A
denoiser (``task = "denoise"`` on its builder) maps noisy luma to clean luma at scale 1 through
``Conv2DTranspose`` decoder layers.
"""

from __future__ import annotations

from deconv_edge_core.registry import Registry

MODELS: Registry = Registry("model")

from . import fsrcnn, rednet, rednet_s, sesr  # noqa: E402,F401  (fill the registry)
from .base import ModelConfig, build_model  # noqa: E402


def names_for(task: str) -> list[str]:
    """The registered models of ``task`` (``super-resolution`` or ``denoise``), in registration order."""
    return [n for n in MODELS.names() if getattr(MODELS.get(n), "task", "super-resolution") == task]


__all__ = ["MODELS", "ModelConfig", "build_model", "names_for"]
