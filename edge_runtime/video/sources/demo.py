"""A built-in moving scene, so the camera loop runs on any machine: ``demo://?size=320x240&fps=30``.

``noise=SIGMA`` (8-bit steps, 0..100) adds seeded Gaussian noise to every frame, as a low-light camera shows
it, so a denoiser has something to remove: ``demo://?noise=25``.

Fine stripes, a zone plate, text and moving edges: where super-resolution differs visibly from bicubic.
For testing the watchdog, ``stall_after=N`` stops delivering after N frames (reads block, like a hung
driver) and ``freeze_after=N`` repeats the N-th frame for ever; both persist across reconnects, like an
unplugged cable would.
"""

from __future__ import annotations

import time
from typing import Optional

import cv2
import numpy as np

from deconv_edge_core.errors import UserError
from edge_runtime.inference.limits import check_allocation, check_pixels

from . import Source, register_source


def _background(w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bg = np.empty((h, w, 3), np.float32)
    bg[..., 0] = 90 + 80 * xx / max(w - 1, 1)
    bg[..., 1] = 60 + 90 * yy / max(h - 1, 1)
    bg[..., 2] = 150 - 60 * xx / max(w - 1, 1)
    # Zone plate on the left: every spatial frequency up to Nyquist.
    r2 = (xx - w * 0.22) ** 2 + (yy - h * 0.55) ** 2
    zone = 0.5 + 0.5 * np.cos(np.pi * r2 / (0.6 * min(w, h)))
    mask = r2 < (0.18 * min(w, h)) ** 2
    bg[mask] = (zone[mask] * 255)[:, None]
    return np.clip(bg, 0, 255).astype(np.uint8)


def _stripes(w: int, h: int) -> np.ndarray:
    """A strip of fine bars of decreasing period, twice as wide as the frame (it scrolls)."""
    xx = np.arange(2 * w, dtype=np.float32)
    period = 2.0 + 6.0 * (xx % w) / w
    row = (127.5 + 127.5 * np.sign(np.sin(2 * np.pi * xx / period))).astype(np.uint8)
    return np.repeat(np.repeat(row[None, :, None], max(4, h // 10), axis=0), 3, axis=2)


@register_source("demo")
class DemoSource(Source):
    """The synthetic scene, paced at ``fps`` like a camera."""

    def __init__(self, spec, shared: Optional[dict] = None):
        super().__init__(spec)
        self.size = spec.size_param("size", (320, 240))
        w, h = self.size
        # The scene is drawn at this size (and enhanced to scale² more): refuse what would not fit.
        check_pixels(h, w, f"source '{spec.uri}'")
        check_allocation(h * w * 3 * 8, f"source '{spec.uri}'")
        self.fps = spec.rate_param("fps", 30.0)
        self.stall_after = spec.param("stall_after", None, int)
        self.freeze_after = spec.param("freeze_after", None, int)
        self.noise_sigma = spec.param("noise", 0.0, float)
        if not 0 <= self.noise_sigma <= 100:
            raise UserError(f"source '{spec.uri}': 'noise' is sigma in 8-bit steps, 0..100, got '{self.noise_sigma:g}'")
        self._rng = np.random.default_rng(0)
        #: frames delivered over all reconnects of this URI (the faults persist across them)
        self.shared = shared if shared is not None else {"delivered": 0, "last": None}
        self._open = False

    def open(self) -> None:
        w, h = self.size
        self._bg = _background(w, h)
        self._stripes = _stripes(w, h)
        self._t0 = time.perf_counter()
        self._n = 0
        self._open = True

    def reopen(self) -> DemoSource:
        return DemoSource(self.spec, self.shared)

    def read(self) -> Optional[np.ndarray]:
        if not self._open:
            return None
        delivered = self.shared["delivered"]
        if self.stall_after is not None and delivered >= self.stall_after:
            while self._open and not self.abandoned:  # a hung driver: nothing, until given up on
                time.sleep(0.02)
            return None
        # Pace like a camera: one frame per period, no burst to catch up after a slow read.
        due = self._t0 + self._n / self.fps
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        elif now - due > 1.0 / self.fps:
            self._t0, self._n = now, 0
        self._n += 1
        if self.freeze_after is not None and delivered >= self.freeze_after and self.shared["last"] is not None:
            return self.shared["last"].copy()
        frame = self.render(delivered)
        if self.noise_sigma > 0:
            noisy = frame.astype(np.float32) + self._rng.normal(0.0, self.noise_sigma, frame.shape).astype(np.float32)
            frame = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
        self.shared["delivered"] = delivered + 1
        self.shared["last"] = frame
        return frame

    def render(self, n: int) -> np.ndarray:
        """Frame ``n`` of the scene."""
        w, h = self.size
        frame = self._bg.copy()
        # Scrolling stripes across the top.
        sh = self._stripes.shape[0]
        off = (2 * n) % w
        y0 = h // 8
        frame[y0:y0 + sh] = self._stripes[:, off:off + w]
        # A bouncing ball with a hard edge.
        t = n / self.fps
        r = max(3, h // 10)
        cx = int(r + (w - 2 * r) * (0.5 + 0.5 * np.sin(1.3 * t)))
        cy = int(h // 2 + (h // 5) * np.sin(2.1 * t))
        cv2.circle(frame, (cx, cy), r, (40, 200, 255), -1, cv2.LINE_AA)
        cv2.circle(frame, (cx, cy), r, (20, 20, 20), 1, cv2.LINE_AA)
        # A clock hand turning once every 4 s.
        cxy = (int(w * 0.78), int(h * 0.7))
        ang = 2 * np.pi * t / 4.0
        tip = (int(cxy[0] + 0.15 * h * np.cos(ang)), int(cxy[1] + 0.15 * h * np.sin(ang)))
        cv2.line(frame, cxy, tip, (255, 255, 255), 2, cv2.LINE_AA)
        # Small text: the hardest thing to upscale.
        scale = max(0.3, h / 600)
        cv2.putText(frame, "deconv-edge demo", (6, h - 24), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
        cv2.putText(frame, f"frame {n:06d}", (6, h - 8), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 255, 255), 1,
                    cv2.LINE_AA)
        return frame

    def close(self) -> None:
        self._open = False
