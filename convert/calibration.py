"""Calibration data from real pictures, preprocessed exactly as the artifact will see them.

Each picture is read as RGB and degraded the way the model's task says (:class:`Degradation`): for
super-resolution, luma (MATLAB ``rgb2ycbcr``), modcropped and degraded to low resolution with the protocol's
bicubic (``../shared/PROTOCOL.md``); for denoising, grey with seeded 8-bit AWGN (and the noise-level map when
the model takes one). Values are 0..1; samples are crops of the size the artifact takes. One :class:`CalibrationSet` feeds both the TFLite representative dataset and ONNX
Runtime's ``CalibrationDataReader``, so every runtime is calibrated on the same tensors. Never random noise.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from deconv_edge_core.errors import UserError
from deconv_edge_train.data import BUILTIN, NamedImage, builtin_images
from deconv_edge_train.protocol import degrade, list_images, load_rgb, modcrop, rgb_to_y

#: Samples the CLI insists on (quantization ranges from fewer crops are noisy); the API may use fewer.
MIN_CALIB_SAMPLES = 100


def load_images(dirs: Sequence[str | Path], what: str) -> list[NamedImage]:
    """Decode every image in ``dirs`` (``builtin`` = scikit-image photos), skipping unreadable files.

    Raises:
        UserError: a folder is missing, or no usable image at all.
    """
    if not dirs:
        raise UserError(f"no {what} folder given")
    images: list[NamedImage] = []
    skipped = []
    for d in dirs:
        if str(d) == BUILTIN:
            images.extend(builtin_images())
            continue
        path = Path(d)
        if not path.is_dir():
            raise UserError(f"{what} folder '{d}' does not exist")
        try:
            files = list_images(path)
        except UserError:
            files = []
        for f in files:
            try:
                images.append(NamedImage(str(f), load_rgb(f)))
            except UserError:
                skipped.append(f.name)
    if skipped:
        print(f"warning: skipped {len(skipped)} unreadable {what} image(s): {', '.join(skipped[:5])}", file=sys.stderr)
    if not images:
        raise UserError(f"{what} folder(s) {', '.join(map(str, dirs))} hold no usable image (.png/.jpg/.bmp expected)")
    return images


def usable(images: Sequence[NamedImage], scale: int, what: str) -> list[NamedImage]:
    """Pictures big enough to degrade by ``scale`` (at least 4 low-resolution pixels a side).

    Raises:
        UserError: none is.
    """
    ok = [img for img in images if min(img.rgb.shape[:2]) >= 4 * scale]
    if not ok:
        raise UserError(f"no usable {what} image: all are smaller than {4 * scale} pixels a side")
    return ok


#: The noise level (8-bit steps) a denoiser is gated and calibrated at: the protocol's middle level.
GATE_SIGMA = 25.0


@dataclass(frozen=True)
class Degradation:
    """What a task does to a ground-truth picture to make the model's input.

    Attributes:
        task: ``super-resolution`` or ``denoise``.
        scale: the model's scale (1 for denoising).
        sigma: denoising: the AWGN level (8-bit steps) used for calibration and the gate.
        level_input: denoising: the model takes the noise-level map σ/255 as a second channel.
    """

    task: str = "super-resolution"
    scale: int = 2
    sigma: float = GATE_SIGMA
    level_input: bool = False

    @property
    def channels(self) -> int:
        return 2 if self.level_input else 1

    def usable(self, images: Sequence[NamedImage], what: str) -> list[NamedImage]:
        return usable(images, max(self.scale, 2), what)

    def truth(self, img: NamedImage) -> np.ndarray:
        """Ground truth (H, W) float64 in 0..255, as the task's protocol measures it."""
        if self.task == "denoise":
            from deconv_edge_train.denoise import grey_of

            return grey_of(img.rgb).astype(np.float64)
        return rgb_to_y(modcrop(img.rgb, self.scale))

    def model_input(self, img: NamedImage, seed: int = 0) -> np.ndarray:
        """The model's input (H, W, channels) float32 in 0..1 (low-resolution luma, or noisy grey and its map)."""
        if self.task != "denoise":
            return lr_luma(img, self.scale)[:, :, None]
        from deconv_edge_train.noise import protocol_noisy

        clean = self.truth(img).astype(np.uint8)
        noisy = protocol_noisy([clean], self.sigma, seed)[0].astype(np.float32) / 255.0
        planes = [noisy] + ([np.full_like(noisy, self.sigma / 255.0)] if self.level_input else [])
        return np.stack(planes, axis=-1)


def degradation_for(source) -> Degradation:
    """The :class:`Degradation` of a ``SourceModel`` (``deconv_edge_convert.manifest``)."""
    noise = getattr(source, "noise", None)
    return Degradation(task=getattr(source, "task", "super-resolution"), scale=int(source.scale),
                       level_input=bool(noise is not None and noise.level_input))


def lr_luma(img: NamedImage, scale: int) -> np.ndarray:
    """The low-resolution luma (H, W) in 0..1 the protocol derives from a ground-truth picture."""
    hr = rgb_to_y(modcrop(img.rgb, scale))
    return (degrade(hr, scale) / 255.0).astype(np.float32)


@dataclass(frozen=True, eq=False)
class CalibrationSet:
    """Calibration samples, each float32 ``(1, H, W, C)`` in 0..1 (luma; for denoisers noisy grey [+ map]).

    Attributes:
        samples: the tensors, in the order every runtime sees them.
        source: where they came from (folders), for manifests.
    """

    samples: tuple
    source: str

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.samples)

    @property
    def size_hw(self) -> tuple[int, int]:
        return tuple(self.samples[0].shape[1:3])

    def representative_dataset(self):
        """TFLite ``representative_dataset``: a callable yielding ``[sample]``."""

        def gen():
            for x in self:
                yield [x]

        return gen

    def ort_reader(self, input_name: str):
        """An ONNX Runtime ``CalibrationDataReader`` over the same samples (NHWC)."""
        from onnxruntime.quantization import CalibrationDataReader

        samples = self.samples

        class _Reader(CalibrationDataReader):
            def __init__(self):
                self._it = iter(samples)

            def get_next(self):
                x = next(self._it, None)
                return None if x is None else {input_name: x}

            def rewind(self):
                self._it = iter(samples)

        return _Reader()


def build_calibration(images: Sequence[NamedImage], scale: int, size_hw: tuple[int, int], samples: int,
                      seed: int = 0, source: str = "", degradation: Degradation | None = None) -> CalibrationSet:
    """Cut ``samples`` crops of ``size_hw`` from the pictures' model inputs, cycling over pictures.

    Pictures smaller than a crop are edge-padded (what a tiling runtime does at a frame border).

    Raises:
        UserError: no pictures, or ``samples`` < 1.
    """
    if not images:
        raise UserError("no calibration image")
    if samples < 1:
        raise UserError(f"calibration needs at least 1 sample, got {samples}")
    deg = degradation or Degradation(scale=scale)
    rng = np.random.default_rng(seed)
    inputs = [deg.model_input(img, seed + i) for i, img in enumerate(deg.usable(images, "calibration"))]
    h, w = int(size_hw[0]), int(size_hw[1])
    out = []
    for k in range(samples):
        x_in = inputs[k % len(inputs)]
        if x_in.shape[0] < h or x_in.shape[1] < w:
            x_in = np.pad(x_in, ((0, max(h - x_in.shape[0], 0)), (0, max(w - x_in.shape[1], 0)), (0, 0)), mode="edge")
        y = int(rng.integers(0, x_in.shape[0] - h + 1))
        x = int(rng.integers(0, x_in.shape[1] - w + 1))
        out.append(np.ascontiguousarray(x_in[y:y + h, x:x + w], dtype=np.float32)[None])
    return CalibrationSet(tuple(out), source)
