"""Noise for the denoising task: the protocol's seeded AWGN, and the noise cameras make.

The protocol (``../shared/PROTOCOL.md``, denoising): ``rng = numpy.random.default_rng(0)``, pictures in sorted
file-name order, one ``rng.normal(0, sigma, shape)`` draw per picture, added to the 0..255 picture, then rounded
and clipped to 8 bits (a camera frame cannot hold values outside 0..255).

Camera noise (for the shipped camera model): signal-dependent Poisson-Gaussian noise on linear-ish intensities,
correlated by a small demosaic-like blur, then JPEG, since live streams are compressed.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

SIGMA_MAX = 50.0
#: What a denoiser can be trained to remove (the manifest's ``noise.model``).
NOISE_MODELS = ("awgn", "camera")
#: Camera noise drawn per training patch: shot-noise factor, read-noise σ (0..1 units), JPEG quality (or none).
CAMERA_SHOT = (0.0, 0.02)
CAMERA_READ = (0.0, 20.0 / 255.0)
CAMERA_JPEG = (60, 95)
CAMERA_NO_JPEG_P = 0.25


def protocol_noisy(clean: Sequence[np.ndarray], sigma: float, seed: int = 0) -> list[np.ndarray]:
    """The protocol's noisy versions of ``clean`` (uint8 pictures, in sorted file-name order).

    Returns:
        uint8 arrays of the same shapes.
    """
    rng = np.random.default_rng(seed)
    out = []
    for img in clean:
        noise = rng.normal(0.0, float(sigma), img.shape)
        out.append(np.clip(np.round(img.astype(np.float64) + noise), 0, 255).astype(np.uint8))
    return out


def awgn_batch(clean01: np.ndarray, sigma255: np.ndarray, rng: np.random.Generator, clip: bool = True) -> np.ndarray:
    """Training noise: AWGN of a per-sample sigma (0..255 units) on 0..1 patches, rounded to 8 bits like frames."""
    noise = rng.normal(0.0, 1.0, clean01.shape).astype(np.float32) * (sigma255.reshape(-1, 1, 1, 1) / 255.0)
    noisy = clean01 + noise
    if clip:
        noisy = np.clip(np.round(noisy * 255.0), 0, 255) / 255.0
    return noisy.astype(np.float32)


def camera_batch(clean01: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Camera noise on each (H, W, 1) patch of a batch, with random strengths; returns the noisy batch and each
    patch's noise level (the std of what was added, 0..255 units, at most :data:`SIGMA_MAX`) for the map."""
    noisy = np.empty_like(clean01)
    level = np.empty(len(clean01), np.float32)
    for k, patch in enumerate(clean01):
        quality = None if rng.random() < CAMERA_NO_JPEG_P else int(rng.integers(CAMERA_JPEG[0], CAMERA_JPEG[1] + 1))
        out = camera_noise(patch[..., 0], rng, shot=float(rng.uniform(*CAMERA_SHOT)),
                           read=float(rng.uniform(*CAMERA_READ)), jpeg_quality=quality)
        noisy[k, ..., 0] = out
        level[k] = min(float(np.std(out - patch[..., 0])) * 255.0, SIGMA_MAX)
    return noisy, level


def camera_noise(clean01: np.ndarray, rng: np.random.Generator, shot: float = 0.01, read: float = 0.02,
                 jpeg_quality: int | None = 85) -> np.ndarray:
    """Poisson-Gaussian noise, demosaic-like correlation and JPEG on one 0..1 picture (H, W) or (H, W, 3).

    Args:
        clean01: the clean picture.
        rng: random source.
        shot: signal-dependent variance factor (variance ``shot · x``).
        read: signal-independent standard deviation (0..1 units).
        jpeg_quality: re-encode as JPEG at this quality (``None``: no compression).
    """
    import cv2

    x = np.clip(clean01.astype(np.float32), 0.0, 1.0)
    std = np.sqrt(np.maximum(shot * x + read * read, 0.0))
    noise = rng.normal(0.0, 1.0, x.shape).astype(np.float32) * std
    # A demosaic interpolates neighbours, so sensor noise reaches the picture spatially correlated.
    noise = cv2.GaussianBlur(noise, (3, 3), 0.6)
    noisy = np.clip(x + noise, 0.0, 1.0)
    img8 = np.round(noisy * 255.0).astype(np.uint8)
    if jpeg_quality is not None:
        ok, buf = cv2.imencode(".jpg", img8, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if ok:
            img8 = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return img8.astype(np.float32) / 255.0
