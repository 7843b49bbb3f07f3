"""Training data: image folders (or the built-in photos) → aligned LR/HR luma patch pairs.

Each image is read once, turned into luma per PROTOCOL.md, optionally rescaled (scale jitter, as FSRCNN's
augmentation), modcropped, and degraded *as a whole* with MATLAB-style bicubic. Patches are then cut at
aligned positions (LR ``(i, j)`` ↔ HR ``(i·r, j·r)``), so a patch pair is exactly what the evaluator sees,
with no border effects from degrading small crops. Flips and 90° rotations commute with the symmetric
bicubic kernel, so they are applied to both patches after cutting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from deconv_edge_core.errors import UserError

from .protocol import degrade, imresize, list_images, load_rgb, modcrop, rgb_to_y

BUILTIN = "builtin"
# Natural photographs bundled inside scikit-image (no download); others need pooch and the network.
_BUILTIN_NAMES = ("astronaut", "camera", "chelsea", "coffee", "rocket", "coins", "moon", "grass", "gravel",
                  "brick", "page", "text", "clock", "immunohistochemistry", "hubble_deep_field")
DEFAULT_JITTER = (1.0, 0.9, 0.8, 0.7, 0.6)


@dataclass(frozen=True)
class NamedImage:
    """A decoded picture: ``rgb`` is uint8 (H, W, 3)."""

    name: str
    rgb: np.ndarray


def builtin_images() -> list[NamedImage]:
    """The sample photographs shipped inside scikit-image (works offline)."""
    try:
        import skimage.data as skd
    except ImportError:  # pragma: no cover - [train] extra missing
        raise UserError("--data builtin needs scikit-image: pip install 'deconv-edge[train]'") from None
    out = []
    for name in _BUILTIN_NAMES:
        try:
            img = np.asarray(getattr(skd, name)())
        except Exception:  # noqa: BLE001 - a sample that would need a download: skip it
            continue
        if img.dtype != np.uint8:
            img = np.clip(img.astype(np.float64) / max(float(img.max()), 1.0) * 255.0, 0, 255).astype(np.uint8)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        out.append(NamedImage(f"builtin:{name}", np.ascontiguousarray(img[..., :3])))
    if not out:
        raise UserError("scikit-image's sample photographs are missing; give --data FOLDER instead")
    return out


def load_image_set(specs: Sequence[str]) -> list[NamedImage]:
    """Decode every image of every folder in ``specs`` (``builtin`` = scikit-image samples).

    Raises:
        UserError: a folder is missing/empty or an image cannot be read.
    """
    if not specs:
        raise UserError("no data given: pass --data FOLDER (or --data builtin)")
    images: list[NamedImage] = []
    for spec in specs:
        if str(spec) == BUILTIN:
            images.extend(builtin_images())
            continue
        for path in list_images(spec):
            images.append(NamedImage(str(path), load_rgb(path)))
    return images


class PatchSampler:
    """Random aligned (LR, HR) luma patch batches in 0..1, NHWC float32.

    Args:
        images: decoded training pictures.
        scale: 2, 3 or 4.
        lr_patch: low-resolution patch side (HR side is ``lr_patch * scale``).
        batch_size: patches per batch.
        jitter: image rescale factors applied before degradation (``(1.0,)`` = none).
        seed: RNG seed.
    """

    def __init__(self, images: Sequence[NamedImage], scale: int, lr_patch: int, batch_size: int,
                 jitter: Sequence[float] = DEFAULT_JITTER, seed: int = 0):
        self.scale, self.lr_patch, self.batch_size = int(scale), int(lr_patch), int(batch_size)
        self.rng = np.random.default_rng(seed)
        hr_patch = self.lr_patch * self.scale
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []
        self.skipped: list[str] = []
        for img in images:
            y = rgb_to_y(img.rgb)
            used = False
            for f in jitter:
                hr = y if f == 1.0 else imresize(y, (round(y.shape[0] * f), round(y.shape[1] * f)))
                hr = modcrop(hr, self.scale)
                if min(hr.shape) < hr_patch:
                    continue
                lr = degrade(hr, self.scale)
                self.pairs.append((lr / 255.0, hr / 255.0))
                used = True
            if not used:
                self.skipped.append(img.name)
        if not self.pairs:
            raise UserError(
                f"every image is smaller than one training patch ({hr_patch}x{hr_patch} px at x{self.scale}); "
                "use bigger images or a smaller --patch"
            )
        # Sample images in proportion to how many patch positions they hold.
        area = np.array([(lr.shape[0] - self.lr_patch + 1) * (lr.shape[1] - self.lr_patch + 1)
                         for lr, _ in self.pairs], dtype=np.float64)
        self.weights = area / area.sum()

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One batch: ``lr`` (B, p, p, 1) and ``hr`` (B, p·r, p·r, 1), float32 0..1."""
        p, r, b = self.lr_patch, self.scale, self.batch_size
        lr_out = np.empty((b, p, p, 1), np.float32)
        hr_out = np.empty((b, p * r, p * r, 1), np.float32)
        idx = self.rng.choice(len(self.pairs), size=b, p=self.weights)
        for k, i in enumerate(idx):
            lr, hr = self.pairs[i]
            y0 = int(self.rng.integers(0, lr.shape[0] - p + 1))
            x0 = int(self.rng.integers(0, lr.shape[1] - p + 1))
            lp = lr[y0:y0 + p, x0:x0 + p]
            hp = hr[y0 * r:(y0 + p) * r, x0 * r:(x0 + p) * r]
            rot, flip = int(self.rng.integers(0, 4)), bool(self.rng.integers(0, 2))
            if flip:
                lp, hp = lp[:, ::-1], hp[:, ::-1]
            lr_out[k, ..., 0] = np.rot90(lp, rot)
            hr_out[k, ..., 0] = np.rot90(hp, rot)
        return lr_out, hr_out

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        while True:
            yield self.sample()

    def dataset(self, prefetch: int = 4):
        """A ``tf.data`` pipeline over :meth:`sample`; prefetching overlaps patch cutting with training."""
        import tensorflow as tf

        p, r = self.lr_patch, self.scale
        sig = (tf.TensorSpec((None, p, p, 1), tf.float32), tf.TensorSpec((None, p * r, p * r, 1), tf.float32))
        return tf.data.Dataset.from_generator(self.__iter__, output_signature=sig).prefetch(prefetch)


def describe_sources(specs: Sequence[str]) -> list[str]:
    """Readable names of the data sources (absolute folders, or ``builtin``)."""
    return [s if s == BUILTIN else str(Path(s).resolve()) for s in specs]
