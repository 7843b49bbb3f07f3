"""Model registry: ``MODELS.get(name)(config)`` builds a Keras model.

Every model maps a one-channel luma image (float 0..1, any size) to the upscaled luma, and ends in a
``Conv2DTranspose`` upsampler named ``upsample`` (the layer ``convert`` rewrites to sub-pixel form).
"""

from __future__ import annotations

from edge_runtime.registry import Registry

MODELS: Registry = Registry("model")

from . import fsrcnn  # noqa: E402,F401  (fills the registry)
from .base import ModelConfig, build_model  # noqa: E402

__all__ = ["MODELS", "ModelConfig", "build_model"]
