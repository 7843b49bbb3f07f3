"""BT.601 studio-range YCbCr (MATLAB ``rgb2ycbcr``), the colour space the models are trained in.

``cv2.COLOR_BGR2YCrCb`` is *full* range (Y = 0.299 R + 0.587 G + 0.114 B, 0..255): feeding its luma to a
model trained on studio-range luma (16..235) shifts contrast and costs PSNR, so the matrices are spelled
out here and applied with ``cv2.transform`` (one pass over the frame, multithreaded by OpenCV).
"""

from __future__ import annotations

import cv2
import numpy as np

# Rows Y, Cb, Cr; columns R, G, B (0..255 in), from MATLAB rgb2ycbcr / PROTOCOL.md.
_RGB_TO_YCBCR = np.array(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ],
    dtype=np.float64,
) / 255.0
_OFFSET = np.array([16.0, 128.0, 128.0])

# OpenCV frames are BGR: reverse the input columns.
_BGR_TO_YCBCR = _RGB_TO_YCBCR[:, ::-1]
_FORWARD = np.hstack([_BGR_TO_YCBCR, _OFFSET[:, None]]).astype(np.float32)
# Inverse: BGR = M^-1 (YCbCr - offset).
_INV = np.linalg.inv(_BGR_TO_YCBCR)
_INVERSE = np.hstack([_INV, (-_INV @ _OFFSET)[:, None]]).astype(np.float32)


def bgr_to_ycbcr(bgr: np.ndarray) -> np.ndarray:
    """uint8 (or float) BGR (H, W, 3) → float32 Y, Cb, Cr (H, W, 3); Y in 16..235, Cb/Cr in 16..240."""
    return cv2.transform(np.asarray(bgr, dtype=np.float32), _FORWARD)


def ycbcr_to_bgr(ycbcr: np.ndarray) -> np.ndarray:
    """float32 Y, Cb, Cr (H, W, 3) → uint8 BGR, rounded and clipped to 0..255."""
    bgr = cv2.transform(np.asarray(ycbcr, dtype=np.float32), _INVERSE)
    # OpenCV's saturating conversion rounds and clips in one pass (numpy's astype would wrap).
    return cv2.add(bgr, 0.0, dtype=cv2.CV_8U)


def bgr_to_ycbcr_u8(bgr: np.ndarray) -> np.ndarray:
    """uint8 BGR (H, W, 3) → uint8 Y, Cb, Cr (rounded): the 8-bit frame path, ~5x faster than float32."""
    return cv2.transform(bgr, _FORWARD)


def ycbcr_u8_to_bgr(ycbcr: np.ndarray) -> np.ndarray:
    """uint8 Y, Cb, Cr (H, W, 3) → uint8 BGR, rounded and saturated by OpenCV."""
    return cv2.transform(ycbcr, _INVERSE)


def luma(bgr: np.ndarray) -> np.ndarray:
    """Studio-range luma (float32, 16..235) of a BGR frame."""
    return bgr_to_ycbcr(bgr)[..., 0]


def as_bgr(frame: np.ndarray) -> np.ndarray:
    """uint8 grey / BGR / BGRA → contiguous uint8 BGR (H, W, 3).

    Raises:
        ValueError: not a uint8 picture.
    """
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"expected a uint8 picture, got {frame.dtype}")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return np.ascontiguousarray(frame)
    raise ValueError(f"expected a grey, BGR or BGRA picture, got shape {frame.shape}")


def full_range_luma(bgr: np.ndarray) -> np.ndarray:
    """uint8 BGR (H, W, 3) → float32 full-range luma Y = 0.299 R + 0.587 G + 0.114 B (0..255): JPEG's and Pillow's
    ``L``, the grey the denoisers are trained on."""
    if bgr.ndim == 2:
        return np.asarray(bgr, np.float32)
    y = cv2.transform(np.asarray(bgr, dtype=np.float32), np.array([[0.114, 0.587, 0.299]], np.float32))
    return y.reshape(bgr.shape[:2])  # one output channel: OpenCV drops the channel axis


def with_luma_delta(bgr: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``bgr`` with its full-range luma changed by ``delta`` and its chroma kept: in full-range YCbCr a luma
    change adds the same amount to R, G and B (every row of the inverse matrix has a 1 in the Y column)."""
    out = np.asarray(bgr, np.float32) + np.asarray(delta, np.float32)[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
