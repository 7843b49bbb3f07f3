"""Colour denoising with a luma denoiser: the model cleans Y, then Cr and Cb at half resolution.

Cameras show chroma noise (coloured blotches) as much as luma noise, and a luma-only pass leaves all of it: on
Set5 with per-channel noise of σ 25, cleaning luma alone lifts PSNR from 20.8 to 21.8 dB (README, Denoising).
A chroma plane of a natural picture is a smooth, low-contrast picture too, so the same one-channel model
cleans it, given that plane's noise level. Chroma runs at half resolution, as a 4:2:0 camera stream carries it:
a quarter of the pixels each, so colour costs 1.5 luma passes, and the 2x2 average halves the noise first.

Strengths: ``--strength`` is the luma noise σ. Under independent noise of equal σ in R, G and B, the full-range
BT.601 rows give Cr and Cb noise 0.984x and 0.930x luma's (row norms 0.6572 and 0.6215 against 0.6681), and
the half-resolution average halves that.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the CLI imports this module for CHROMA_MODES, without numpy
    import numpy as np

#: ``denoise``: luma, then chroma at half resolution; ``keep``: luma only, chroma exactly as it came.
CHROMA_MODES = ("denoise", "keep")
#: Each half-resolution chroma plane's noise σ per unit of luma σ (see the module docstring).
CHROMA_STRENGTH = {"cr": 0.6572 / 0.6681 / 2.0, "cb": 0.6215 / 0.6681 / 2.0}
#: Luma noise σ per unit of σ in each of R, G and B (independent): the strength for colour noise of that σ.
LUMA_PER_CHANNEL = 0.6681


def denoise_colour(enhancer, bgr: np.ndarray, t0: float) -> np.ndarray:
    """One uint8 BGR frame through a luma denoiser on Y, Cr and Cb (the latter two at half resolution).

    Args:
        enhancer: the :class:`~edge_runtime.inference.enhance.Enhancer` (a full-range denoiser with a noise
            level input).
        bgr: the frame.
        t0: when the call began (``time.perf_counter``), for the stage timings.

    Returns:
        The denoised uint8 BGR frame.
    """
    import cv2  # here, so that the CLI can list CHROMA_MODES without OpenCV or numpy (`verify` needs neither)

    h, w = bgr.shape[:2]
    y, cr, cb = cv2.split(cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb))  # full range (JPEG's), chroma around 128
    if cv2.minMaxLoc(cr)[:2] == (128.0, 128.0) and cv2.minMaxLoc(cb)[:2] == (128.0, 128.0):
        # A grey frame (a monochrome camera as BGR): no chroma to clean, and a flat plane through the model
        # picks up a faint +-2 level pattern, which would tint it.
        return enhancer._call_full_range(bgr, t0)
    half = ((w + 1) // 2, (h + 1) // 2)
    cr_half = cv2.resize(cr, half, interpolation=cv2.INTER_AREA)
    cb_half = cv2.resize(cb, half, interpolation=cv2.INTER_AREA)
    t1 = time.perf_counter()
    s = enhancer.strength
    y_out = enhancer.denoise_plane(y, s)
    cr_out = enhancer.denoise_plane(cr_half, s * CHROMA_STRENGTH["cr"])
    cb_out = enhancer.denoise_plane(cb_half, s * CHROMA_STRENGTH["cb"])
    t2 = time.perf_counter()
    full = (w, h)
    merged = cv2.merge([y_out, cv2.resize(cr_out, full, interpolation=cv2.INTER_LINEAR),
                        cv2.resize(cb_out, full, interpolation=cv2.INTER_LINEAR)])
    out = cv2.cvtColor(merged, cv2.COLOR_YCrCb2BGR)
    t3 = time.perf_counter()
    enhancer.last_timing_ms = {"preprocess": (t1 - t0) * 1e3, "invoke": (t2 - t1) * 1e3,
                               "postprocess": (t3 - t2) * 1e3}
    return out
