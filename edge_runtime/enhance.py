"""Full-frame enhancement: luma through the model, chroma by bicubic, frames of any size.

Fixed-shape artifacts (Edge TPU, most int8 exports) only take one input size, so a frame is cut into tiles
that overlap by a *halo* of context on each side; each tile keeps only its centre, and the cuts lie in the
middle of the overlaps. As long as the halo covers the network's receptive radius, the stitched result is
the one a whole-frame run would give (tiles touching the frame border see the same zero padding a
whole-frame run sees), and tiles go through the model in batches when the backend allows.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from .backends import Backend, open_backend
from .color import as_bgr, bgr_to_ycbcr, bgr_to_ycbcr_u8, ycbcr_to_bgr, ycbcr_u8_to_bgr
from .config import RuntimeConfig
from .default_model import resolve_model
from .errors import UserError

#: Context (low-resolution pixels) each tile gets beyond the part it keeps. FSRCNN's receptive radius is
#: 2 (5x5 feature conv) + m (3x3 mapping convs) + ceil(4 / scale) (9x9 deconvolution): 9 for (56, 12, 4) x2.
DEFAULT_HALO = 12
#: Tiles per backend call when the artifact has a dynamic batch dimension.
DEFAULT_MAX_BATCH = 8
#: Dynamic-shape artifacts run larger frames in tiles: FSRCNN's 56 feature maps of a 12 MP photo would take
#: several GB of activations; 512x512 tiles keep it near 60 MB each.
MAX_WHOLE_FRAME_PIXELS = 1024 * 1024
AUTO_TILE = (512, 512)


def tile_spans(length: int, tile: int, halo: int) -> list[tuple[int, int, int]]:
    """Cover ``0..length`` with tiles of ``tile`` pixels that overlap by at least ``2 * halo``.

    Returns ``(start, keep_from, keep_to)`` per tile, in frame coordinates: the tile reads
    ``start .. start + tile`` and contributes ``keep_from .. keep_to``. The kept parts partition the frame, and
    every cut between two tiles has at least ``halo`` pixels of context on both sides. ``length <= tile`` gives
    one tile (the caller pads the frame up to ``tile``).

    Raises:
        ValueError: ``tile`` leaves nothing to keep once the halos are taken off.
    """
    if length <= tile:
        return [(0, 0, length)]
    step = tile - 2 * halo
    if step < 1:
        raise ValueError(f"tile {tile} is too small for a halo of {halo} pixels on each side")
    starts = list(range(0, length - tile, step)) + [length - tile]
    if len(starts) > 1 and starts[-1] == starts[-2]:
        starts.pop()
    cuts = [0] + [(b + a + tile) // 2 for a, b in zip(starts, starts[1:])] + [length]
    return [(s, cuts[i], cuts[i + 1]) for i, s in enumerate(starts)]


class Enhancer:
    """Upscale BGR frames with an artifact made by ``deconv-edge convert``.

    Args:
        model: artifact or manifest path; ``None`` = the shipped default model.
        config: backend, threads, providers (see :class:`~edge_runtime.config.RuntimeConfig`; default: auto).
        tile: ``(height, width)`` of the low-resolution tiles to run. Fixed-shape artifacts always tile at their
            input size (a different ``tile`` is an error); dynamic artifacts run the whole frame unless given one.
        halo: low-resolution pixels of context around each tile's kept part.
        max_batch: tiles per call when the artifact's batch dimension is dynamic.

    Example::

        enhancer = Enhancer("model_x2.tflite")
        big = enhancer(cv2.imread("small.png"))     # uint8 BGR in, uint8 BGR (2x) out

    Attributes:
        last_timing_ms: ``preprocess``, ``invoke`` and ``postprocess`` milliseconds of the last call.

    Raises:
        UserError: missing/invalid/tampered artifact, unusable backend, bad tile.
    """

    def __init__(self, model: Optional[str | Path] = None, config: Optional[RuntimeConfig] = None, *,
                 tile: Optional[Sequence[int]] = None, halo: int = DEFAULT_HALO,
                 max_batch: int = DEFAULT_MAX_BATCH):
        self.model_path = resolve_model(model)
        self.backend: Backend = open_backend(self.model_path, config or RuntimeConfig())
        self.manifest = self.backend.manifest
        self.scale = int(self.manifest.scale)
        fixed_h, fixed_w = self.manifest.input.hw
        if tile is not None:
            tile = (int(tile[0]), int(tile[1]))
            if (fixed_h is not None and tile[0] != fixed_h) or (fixed_w is not None and tile[1] != fixed_w):
                raise UserError(f"'{self.model_path.name}' takes {fixed_h}x{fixed_w} inputs only; "
                                f"drop the tile option or give {fixed_h}x{fixed_w}")
            self.tile: tuple = tile
        else:
            self.tile = (fixed_h, fixed_w)  # None along an axis = no tiling along it
        self.halo = int(halo)
        for side in self.tile:
            if side is not None and side - 2 * self.halo < 1:
                raise UserError(f"tile {self.tile[0]}x{self.tile[1]} is too small for a halo of {self.halo} "
                                f"pixels; use a smaller --halo")
        self.max_batch = max(1, int(max_batch)) if self.backend.batch_ok else 1
        lo, hi = self.manifest.value_range
        self._in_scale, self._in_offset = (hi - lo) / 255.0, lo
        self._luts = self._byte_luts()
        self.last_timing_ms: dict = {}

    # -- public --------------------------------------------------------------------------------------
    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Upscale one uint8 BGR frame (grey and BGRA accepted) to uint8 BGR ``scale`` times larger."""
        t0 = time.perf_counter()
        bgr = as_bgr(frame)
        if self._luts is not None and not self._tiles_for(*bgr.shape[:2]):
            return self._call_u8(bgr, t0)
        ycc = bgr_to_ycbcr(bgr)
        y = ycc[..., 0] * self._in_scale + self._in_offset
        t1 = time.perf_counter()
        y_hr = self.upscale_y(y)
        t2 = time.perf_counter()
        h, w = bgr.shape[:2]
        # Chroma by bicubic; resizing all three planes and overwriting Y beats splitting and merging.
        ycc_hr = cv2.resize(ycc, (w * self.scale, h * self.scale), interpolation=cv2.INTER_CUBIC)
        ycc_hr[..., 0] = (y_hr - self._in_offset) / self._in_scale
        out = ycbcr_to_bgr(ycc_hr)
        t3 = time.perf_counter()
        self.last_timing_ms = {"preprocess": (t1 - t0) * 1e3, "invoke": (t2 - t1) * 1e3,
                               "postprocess": (t3 - t2) * 1e3}
        return out

    def _byte_luts(self) -> Optional[tuple]:
        """Lookup tables for the 8-bit frame path, or ``None`` when the artifact's I/O is not 8-bit.

        With uint8 input and output tensors the whole frame can stay in bytes: studio-range luma (a byte)
        maps to the input tensor's byte and the output tensor's byte maps back to luma, each through a
        256-entry table built from the manifest's quantization. Colour conversion and the chroma resize then
        run on uint8 planes instead of float32 (README: ~4.5 ms -> ~0.7 ms per 320x240 frame here).
        """
        spec_in, spec_out = self.manifest.input, self.manifest.output
        if spec_in.dtype != "uint8" or spec_out.dtype != "uint8" or spec_in.quantization is None \
                or spec_out.quantization is None:
            return None
        levels = np.arange(256, dtype=np.float64)
        real_in = levels * self._in_scale + self._in_offset
        q_in = np.round(real_in / spec_in.quantization.scale) + spec_in.quantization.zero_point
        real_out = (levels - spec_out.quantization.zero_point) * spec_out.quantization.scale
        y_out = np.round((real_out - self._in_offset) / self._in_scale)
        return np.clip(q_in, 0, 255).astype(np.uint8), np.clip(y_out, 0, 255).astype(np.uint8)

    def _tiles_for(self, h: int, w: int) -> bool:
        """Whether an (h, w) luma plane goes through the model in tiles rather than whole."""
        th, tw = self.tile
        if th is None and tw is None:
            return h * w > MAX_WHOLE_FRAME_PIXELS
        return not ((th is None or th == h) and (tw is None or tw == w))

    def _call_u8(self, bgr: np.ndarray, t0: float) -> np.ndarray:
        lut_in, lut_out = self._luts
        ycc = bgr_to_ycbcr_u8(bgr)
        q = cv2.LUT(ycc[..., 0], lut_in)
        t1 = time.perf_counter()
        y_hr = self.backend.run_native(q[None, :, :, None])[0, :, :, 0]
        t2 = time.perf_counter()
        h, w = bgr.shape[:2]
        ycc_hr = cv2.resize(ycc, (w * self.scale, h * self.scale), interpolation=cv2.INTER_CUBIC)
        ycc_hr[..., 0] = cv2.LUT(y_hr, lut_out)
        out = ycbcr_u8_to_bgr(ycc_hr)
        t3 = time.perf_counter()
        self.last_timing_ms = {"preprocess": (t1 - t0) * 1e3, "invoke": (t2 - t1) * 1e3,
                               "postprocess": (t3 - t2) * 1e3}
        return out

    def bicubic(self, frame: np.ndarray) -> np.ndarray:
        """The plain bicubic upscale of ``frame`` (what ``--compare`` shows beside the model)."""
        bgr = as_bgr(frame)
        h, w = bgr.shape[:2]
        return cv2.resize(bgr, (w * self.scale, h * self.scale), interpolation=cv2.INTER_CUBIC)

    def upscale_y(self, y: np.ndarray) -> np.ndarray:
        """Model-space luma (H, W) float32 → (H·s, W·s) float32, tiling when the artifact needs it."""
        h, w = y.shape
        if not self._tiles_for(h, w):
            return self.backend.run(np.ascontiguousarray(y, dtype=np.float32)[None, :, :, None])[0, :, :, 0]
        th, tw = self.tile if self.tile != (None, None) else AUTO_TILE
        th, tw = th or h, tw or w
        # Frames smaller than a tile are padded up to it (only the border pixels see the padding).
        ph, pw = max(h, th), max(w, tw)
        if (ph, pw) != (h, w):
            y = cv2.copyMakeBorder(y, 0, ph - h, 0, pw - w, cv2.BORDER_REPLICATE)
        s = self.scale
        spans = [(ys, xs) for ys in tile_spans(ph, th, self.halo) for xs in tile_spans(pw, tw, self.halo)]
        out = np.empty((ph * s, pw * s), dtype=np.float32)
        for i in range(0, len(spans), self.max_batch):
            chunk = spans[i:i + self.max_batch]
            batch = np.zeros((self.max_batch, th, tw, 1), dtype=np.float32)
            for j, ((y0, _, _), (x0, _, _)) in enumerate(chunk):
                batch[j, :, :, 0] = y[y0:y0 + th, x0:x0 + tw]
            # A short last batch is zero-padded: one input shape means no interpreter re-allocation.
            res = self.backend.run(batch)
            for j, ((y0, yf, yt), (x0, xf, xt)) in enumerate(chunk):
                out[yf * s:yt * s, xf * s:xt * s] = res[j, (yf - y0) * s:(yt - y0) * s, (xf - x0) * s:(xt - x0) * s, 0]
        return out[:h * s, :w * s]

    def describe(self) -> dict:
        """Model, format, scale, tiling and backend details (for stats and logs)."""
        th, tw = self.tile
        return {"model": self.model_path.name, "format": self.manifest.format, "scale": self.scale,
                "tile": None if th is None and tw is None else [th, tw], "halo": self.halo,
                "batch": self.max_batch, **self.backend.describe()}

