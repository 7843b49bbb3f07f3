"""Task registry: what a model restores, and what that means for its data, scale and validation.

``super-resolution`` upscales luma by 2, 3 or 4 (``PROTOCOL.md``, first part); ``denoise`` removes noise at scale 1
(``PROTOCOL.md``, denoising part). A model declares its task; training, evaluation and (later) the manifest read
it from here instead of assuming super-resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

from deconv_edge_core.errors import UserError
from deconv_edge_core.registry import Registry

TASKS: Registry = Registry("task")


@dataclass(frozen=True)
class Task:
    """One restoration task.

    Attributes:
        name: registry key (also the manifest's ``task``).
        scales: the output/input size ratios it supports.
        description: one line for ``--help`` and listings.
    """

    name: str
    scales: tuple
    description: str

    def check_scale(self, scale: int) -> int:
        if int(scale) not in self.scales:
            valid = ", ".join(map(str, self.scales))
            raise UserError(f"scale {scale} is not supported for {self.name}; use one of {valid}")
        return int(scale)


SUPER_RESOLUTION = TASKS.register("super-resolution")(
    Task("super-resolution", (2, 3, 4), "upscale luma x2/x3/x4 (deconvolution upsampler)"))
DENOISE = TASKS.register("denoise")(
    Task("denoise", (1,), "remove camera noise at scale 1 (conv-deconv encoder-decoder)"))
