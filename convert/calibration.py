"""Calibration data from real pictures, preprocessed exactly as the artifact will see them.

Each picture is read as RGB, turned into luma (MATLAB ``rgb2ycbcr``), modcropped and degraded to low
resolution with the protocol's bicubic (``../shared/PROTOCOL.md``), scaled to 0..1; samples are crops of the
size the artifact takes. One :class:`CalibrationSet` feeds both the TFLite representative dataset and ONNX
Runtime's ``CalibrationDataReader``, so every runtime is calibrated on the same tensors. Never random noise.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from edge_runtime.errors import UserError
from train.data import BUILTIN, NamedImage, builtin_images
from train.protocol import degrade, list_images, load_rgb, modcrop, rgb_to_y

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


def lr_luma(img: NamedImage, scale: int) -> np.ndarray:
    """The low-resolution luma (H, W) in 0..1 the protocol derives from a ground-truth picture."""
    hr = rgb_to_y(modcrop(img.rgb, scale))
    return (degrade(hr, scale) / 255.0).astype(np.float32)


@dataclass(frozen=True, eq=False)
class CalibrationSet:
    """Calibration samples, each float32 ``(1, H, W, 1)`` luma in 0..1.

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
                      seed: int = 0, source: str = "") -> CalibrationSet:
    """Cut ``samples`` crops of ``size_hw`` from the pictures' low-resolution luma, cycling over pictures.

    Pictures smaller than a crop are edge-padded (what a tiling runtime does at a frame border).

    Raises:
        UserError: no pictures, or ``samples`` < 1.
    """
    if not images:
        raise UserError("no calibration image")
    if samples < 1:
        raise UserError(f"calibration needs at least 1 sample, got {samples}")
    rng = np.random.default_rng(seed)
    lrs = [lr_luma(img, scale) for img in usable(images, scale, "calibration")]
    h, w = int(size_hw[0]), int(size_hw[1])
    out = []
    for k in range(samples):
        lr = lrs[k % len(lrs)]
        if lr.shape[0] < h or lr.shape[1] < w:
            lr = np.pad(lr, ((0, max(h - lr.shape[0], 0)), (0, max(w - lr.shape[1], 0))), mode="edge")
        y = int(rng.integers(0, lr.shape[0] - h + 1))
        x = int(rng.integers(0, lr.shape[1] - w + 1))
        out.append(np.ascontiguousarray(lr[y:y + h, x:x + w], dtype=np.float32)[None, :, :, None])
    return CalibrationSet(tuple(out), source)
