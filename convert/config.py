"""What ``convert`` is asked to do: :class:`ExportConfig` and the parsers of the command's options."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

from deconv_edge_core.argtypes import split_hw
from deconv_edge_core.errors import UserError

from .exporters import EXPORTERS, GATE_PSNR_DROP, Exporter

ALL = "all"
AUTO = "auto"
UPSAMPLER_CHOICES = (AUTO, "deconv", "subpixel")
#: Fixed input of the Edge TPU artifact when ``--input-size`` is not given (QVGA, landscape).
DEFAULT_EDGETPU_SIZE_HW = (240, 320)
MAX_INPUT_SIDE = 8192


@dataclass(frozen=True)
class ExportConfig:
    """How to export.

    Attributes:
        input_size_hw: fixed input ``(H, W)`` for every artifact; ``None`` = dynamic where the format allows
            (the Edge TPU then gets :data:`DEFAULT_EDGETPU_SIZE_HW`).
        upsampler: ``auto`` (sub-pixel for CPU/GPU formats, deconvolution for the Edge TPU), ``deconv`` or
            ``subpixel``.
        max_psnr_drop_db: overrides every PSNR-drop gate (fp16, dynamic, int8, edgetpu); fp32 keeps max abs.
        calib_samples: calibration crops (the CLI requires >= 100; tests may use fewer).
        calib_size_hw: crop size for dynamic-size artifacts (fixed-size ones use their input size).
        options: per-format options ``((format, name, value), ...)``.
        split_concat: for int8-weight formats, split the residual concat into per-group upsampler
            convolutions and write the LR group's weights as hi + lo (see ``deconv_edge_convert.rewrite``).
        threads: CPU threads for the gate's runtime (``None`` = runtime default).
        seed: calibration crop positions.
        batch: batch dimension of every artifact (``None`` = dynamic, e.g. batched tiles); the Edge TPU
            always gets 1.
    """

    input_size_hw: Optional[tuple] = None
    upsampler: str = AUTO
    max_psnr_drop_db: Optional[float] = None
    calib_samples: int = 128
    calib_size_hw: tuple = (96, 96)
    options: tuple = ()
    split_concat: bool = True
    threads: Optional[int] = None
    seed: int = 0
    batch: Optional[int] = 1

    def __post_init__(self):
        if self.upsampler not in UPSAMPLER_CHOICES:
            raise UserError(f"unknown upsampler '{self.upsampler}'; valid: {', '.join(UPSAMPLER_CHOICES)}")
        if self.input_size_hw is not None:
            check_size(self.input_size_hw)
        if self.max_psnr_drop_db is not None and not self.max_psnr_drop_db >= 0:
            raise UserError(f"--max-psnr-drop must be >= 0 dB, got {self.max_psnr_drop_db}")
        if self.batch is not None and self.batch < 1:
            raise UserError(f"batch must be >= 1 or None (dynamic), got {self.batch}")
        if self.calib_samples < 1:
            raise UserError(f"calib_samples must be >= 1, got {self.calib_samples}")

    def upsampler_for(self, exporter: Exporter) -> str:
        return exporter.default_upsampler if self.upsampler == AUTO else self.upsampler

    def input_shape_for(self, exporter: Exporter) -> tuple:
        size = self.input_size_hw or (DEFAULT_EDGETPU_SIZE_HW if exporter.static_shape else None)
        batch = 1 if exporter.static_shape else self.batch
        if size is None:
            return (batch, None, None, 1)  # the litert backend resizes H and W per frame size
        return (batch, int(size[0]), int(size[1]), 1)

    def gate_for(self, exporter: Exporter):
        from .check import Gate

        threshold = exporter.gate_threshold
        if exporter.gate_metric == GATE_PSNR_DROP and self.max_psnr_drop_db is not None:
            threshold = float(self.max_psnr_drop_db)
        return Gate(exporter.gate_metric, threshold)

    def options_for(self, exporter: Exporter) -> tuple:
        given = {name: value for key, name, value in self.options if key == exporter.key}
        return exporter.resolve_options(given)


def check_size(size_hw) -> tuple:
    try:
        h, w = (int(v) for v in size_hw)
    except (TypeError, ValueError):
        raise UserError(f"input size {size_hw!r} is not (height, width)") from None
    if not (0 < h <= MAX_INPUT_SIDE and 0 < w <= MAX_INPUT_SIDE):
        raise UserError(f"input size {h}x{w} is out of range (1..{MAX_INPUT_SIDE} per side)")
    return h, w


def parse_input_size(text: str) -> tuple:
    """``"240x320"`` → ``(240, 320)`` (height x width)."""
    hw = split_hw(text)
    if not hw:
        raise UserError(f"bad --input-size '{text}': expected HxW, e.g. 240x320")
    return check_size(hw)


def parse_formats(spec: str | Sequence[str]) -> list[str]:
    """``"all"`` or a comma-separated list of format keys → validated keys in registry order of mention."""
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) for s in s.split(",")]
    items = [s for s in items if s]
    if not items:
        raise UserError(f"no format given; valid: {ALL}, {', '.join(EXPORTERS.names())}")
    if ALL in items:
        return EXPORTERS.names()
    out = []
    for key in items:
        EXPORTERS.get(key)  # one-line error listing the valid formats
        if key not in out:
            out.append(key)
    return out


def parse_option(text: str) -> tuple:
    """``"tflite-int8.io_dtype=int8"`` → ``("tflite-int8", "io_dtype", "int8")`` (format and name checked)."""
    m = re.fullmatch(r"([\w-]+)\.(\w+)=(.+)", text.strip())
    if not m:
        raise UserError(f"bad --option '{text}': expected FORMAT.NAME=VALUE, e.g. tflite-int8.io_dtype=int8")
    key, name, value = m.groups()
    exp = EXPORTERS.get(key)
    exp.resolve_options({name: value})
    return key, name, value


def denoiser_input_shape(shape: tuple, source) -> tuple:
    """A denoiser's input: its channels (noisy luma [+ noise-level map]); fixed sides in its size multiple."""
    m = source.size_multiple
    for side in shape[1:3]:
        if side is not None and side % m:
            raise UserError(f"input size {shape[1]}x{shape[2]}: this denoiser takes sides in multiples of {m}; "
                            f"pass --input-size with multiples of {m}")
    channels = 2 if source.noise is not None and source.noise.level_input else 1
    return tuple(shape[:3]) + (channels,)
