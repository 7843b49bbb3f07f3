"""Full-frame enhancement: luma through the model, chroma by bicubic, frames of any size.

The task comes from the manifest: a super-resolution artifact upscales luma ``scale`` times; a denoiser
(scale 1) cleans it, and when it takes a noise-level map (FFDNet-style) the :attr:`Enhancer.strength` (σ in
8-bit steps, live-adjustable) fills that second input channel.

Fixed-shape artifacts (Edge TPU, fixed-size exports) run in overlapping tiles (:mod:`.tiling`, the one tiler,
which the converter's accuracy gate runs too), in batches when the backend allows.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from deconv_edge_core.errors import UserError
from deconv_edge_core.manifest import COLOR_SPACE_Y_FULL

from .backends import Backend, open_backend
from .catalog import resolve as resolve_name
from .chroma import CHROMA_MODES, denoise_colour
from .color import (
    as_bgr,
    bgr_to_ycbcr,
    bgr_to_ycbcr_u8,
    full_range_luma,
    with_luma_delta,
    ycbcr_to_bgr,
    ycbcr_u8_to_bgr,
)
from .config import RuntimeConfig
from .limits import check_allocation, check_frame, model_bytes
from .tiling import run_tiled, tile_spans  # noqa: F401  (tile_spans: re-exported for callers of this module)

#: Context (low-resolution pixels) each tile gets beyond the part it keeps. FSRCNN's receptive radius is
#: 2 (5x5 feature conv) + m (3x3 mapping convs) + ceil(4 / scale) (9x9 deconvolution): 9 for (56, 12, 4) x2.
DEFAULT_HALO = 12
#: Tiles per backend call when the artifact has a dynamic batch dimension.
DEFAULT_MAX_BATCH = 8
#: Dynamic-shape artifacts run larger frames in tiles: FSRCNN's 56 feature maps of a 12 MP photo would take
#: several GB of activations; 512x512 tiles keep it near 60 MB each.
MAX_WHOLE_FRAME_PIXELS = 1024 * 1024
AUTO_TILE = (512, 512)
#: A denoiser's default strength (σ, 8-bit steps) when it takes a noise-level map: the protocol's middle level.
DEFAULT_STRENGTH = 25.0
#: Halo for the RED-Net-style denoisers: 2 stride-2 levels, 3x3 convs and 4x4 deconvolutions reach about 20
#: pixels; 24 covers it and stays a multiple of the 4-pixel stride grid.
DENOISE_HALO = 24


def default_halo(task: str, receptive_radius_px: Optional[int] = None, multiple: int = 1) -> int:
    """The task's halo, widened to the network's recorded receptive radius (rounded up to ``multiple``, the
    stride grid) where the manifest says it sees farther."""
    halo = DENOISE_HALO if task == "denoise" else DEFAULT_HALO
    if receptive_radius_px:
        halo = max(halo, -(-int(receptive_radius_px) // max(1, multiple)) * max(1, multiple))
    return halo


class Enhancer:
    """Upscale BGR frames with an artifact made by ``deconv-edge convert``.

    Args:
        model: artifact or manifest path, or a shipped model's name (``"x3"``, ``"fast"``, ``"fsrcnn_x3"``,
            ``"fsrcnn_x3_int8"``; see :mod:`edge_runtime.inference.catalog`); ``None`` = the shipped default model.
        config: backend, threads, providers (see :class:`~edge_runtime.inference.config.RuntimeConfig`; default:
            auto, every usable core).
        tile: ``(height, width)`` of the low-resolution tiles to run. Fixed-shape artifacts always tile at their
            input size (a different ``tile`` is an error); dynamic artifacts run the whole frame unless given one.
        halo: low-resolution pixels of context around each tile's kept part.
        max_batch: tiles per call when the artifact's batch dimension is dynamic.
        strength: denoisers with a noise-level input: σ (8-bit steps) to remove, within the manifest's
            ``noise.sigma_range`` (default :data:`DEFAULT_STRENGTH`); settable later with :meth:`set_strength`.
        task: if given, the model must be of this task (``super-resolution`` or ``denoise``).
        chroma: denoisers with a noise-level input, colour frames: ``denoise`` (the default: luma, then the
            chroma planes at half resolution, :mod:`~edge_runtime.inference.chroma`) or ``keep`` (luma only).

    Example::

        enhancer = Enhancer("model_x2.tflite")
        big = enhancer(cv2.imread("small.png"))     # uint8 BGR in, uint8 BGR (2x) out

    Attributes:
        last_timing_ms: ``preprocess``, ``invoke`` and ``postprocess`` milliseconds of the last call.

    Raises:
        UserError: missing/invalid/tampered artifact, unusable backend, bad tile.
    """

    def __init__(self, model: Optional[str | Path] = None, config: Optional[RuntimeConfig] = None, *,
                 tile: Optional[Sequence[int]] = None, halo: Optional[int] = None,
                 max_batch: int = DEFAULT_MAX_BATCH, strength: Optional[float] = None, task: Optional[str] = None,
                 chroma: Optional[str] = None):
        self.choice = resolve_name(model)
        self.model_path = self.choice.path
        self._threads_given = config is not None and config.threads is not None
        self.backend: Backend = open_backend(self.model_path, config or RuntimeConfig())
        self.manifest = self.backend.manifest
        self.scale = int(self.manifest.scale)
        self.task = self.manifest.task
        if task is not None and task != self.task:
            raise UserError(f"'{self.model_path.name}' is a {self.task} model, not {task}; "
                            f"drop --task or pick a {task} model ('deconv-edge models' lists them)")
        noise = self.manifest.noise
        self._multiple = noise.size_multiple if noise is not None else 1
        self._level_input = bool(noise is not None and noise.level_input)
        self.strength: Optional[float] = None
        if self._level_input:
            self.set_strength(DEFAULT_STRENGTH if strength is None else strength)
        elif strength is not None:
            raise UserError(f"'{self.model_path.name}' takes no noise level ({self.task} model); drop --strength")
        if chroma is not None and chroma not in CHROMA_MODES:
            raise UserError(f"--chroma must be one of {', '.join(CHROMA_MODES)}, not '{chroma}'")
        if chroma == "denoise" and not self._level_input:
            raise UserError(f"'{self.model_path.name}' has no noise-level input to set for the chroma planes; "
                            "drop --chroma (it cleans luma only)")
        #: ``denoise``: colour frames get their chroma cleaned too; ``keep``: luma only (and every SR model)
        self.chroma = chroma or ("denoise" if self._level_input else "keep")
        if halo is None:
            halo = default_halo(self.task, self.manifest.receptive_radius_px, self._multiple)
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
            if side is not None and side % self._multiple:
                raise UserError(f"tile {self.tile[0]}x{self.tile[1]}: this model takes sides in multiples of "
                                f"{self._multiple}; give a tile in multiples of {self._multiple}")
            if side is not None and side - 2 * self.halo < 1:
                raise UserError(f"tile {self.tile[0]}x{self.tile[1]} is too small for a halo of {self.halo} "
                                f"pixels; use a smaller --halo")
        self.max_batch = max(1, int(max_batch)) if self.backend.batch_ok else 1
        lo, hi = self.manifest.value_range
        self._in_scale, self._in_offset = (hi - lo) / 255.0, lo
        self._luts = self._byte_luts()
        self.last_timing_ms: dict = {}
        self._checked_hw: Optional[tuple] = None
        th, tw = self.tile
        if th is not None or tw is not None:
            # The tile batch, its output (scale² larger) and the model's activations for it: they must fit.
            side_h, side_w = th or AUTO_TILE[0], tw or AUTO_TILE[1]
            check_allocation(model_bytes(self.max_batch * side_h * side_w, self.scale),
                             f"a batch of {self.max_batch} tile(s) of {side_h}x{side_w}")

    # -- public --------------------------------------------------------------------------------------
    def set_strength(self, sigma: float) -> float:
        """Set the noise level (σ, 8-bit steps) a noise-map denoiser removes; returns it.

        Raises:
            UserError: the model takes no noise level, or ``sigma`` is outside its trained range.
        """
        if not self._level_input:
            raise UserError(f"'{self.model_path.name}' takes no noise level; strength is for noise-map denoisers")
        lo, hi = self.manifest.noise.sigma_range
        try:
            sigma = float(sigma)
        except (TypeError, ValueError):
            raise UserError(f"strength {sigma!r} is not a number; give sigma in 8-bit steps, {lo:g}..{hi:g}") from None
        if not lo <= sigma <= hi:
            raise UserError(f"strength {sigma:g} is outside {lo:g}..{hi:g}, the noise levels this model was trained on")
        self.strength = sigma
        return sigma

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Upscale one uint8 BGR frame (grey and BGRA accepted) to uint8 BGR ``scale`` times larger."""
        t0 = time.perf_counter()
        hw = tuple(np.shape(frame)[:2])
        if hw != self._checked_hw:
            # Once per frame size: the output is scale² larger than the input, and must fit in memory.
            run_px = self.max_batch * (self.tile[0] or AUTO_TILE[0]) * (self.tile[1] or AUTO_TILE[1]) \
                if self._tiles_for(*hw[:2]) else hw[0] * hw[1]
            check_frame(hw[0], hw[1], self.scale, "the frame" if len(hw) == 2 else "the input",
                        extra_bytes=model_bytes(run_px, self.scale))
            self._checked_hw = hw
        bgr = as_bgr(frame)
        if self.manifest.color_space == COLOR_SPACE_Y_FULL:
            if self.chroma == "denoise" and np.ndim(frame) == 3 and np.shape(frame)[2] >= 3:
                return denoise_colour(self, bgr, t0)
            return self._call_full_range(bgr, t0)
        if self._luts is not None and not self._tiles_for(*bgr.shape[:2]):
            return self._call_u8(bgr, t0)
        ycc = bgr_to_ycbcr(bgr)
        y = ycc[..., 0] * self._in_scale + self._in_offset
        t1 = time.perf_counter()
        y_hr = self.upscale_y(y)
        t2 = time.perf_counter()
        h, w = bgr.shape[:2]
        # Chroma by bicubic; resizing all three planes and overwriting Y beats splitting and merging.
        ycc_hr = ycc.copy() if self.scale == 1 else \
            cv2.resize(ycc, (w * self.scale, h * self.scale), interpolation=cv2.INTER_CUBIC)
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
        if self.manifest.input.hw == (None, None) and (th is None or h <= th) and (tw is None or w <= tw):
            return False  # a dynamic-shape model takes a plane that fits in one tile as it is (exact, cheaper)
        return not ((th is None or th == h) and (tw is None or tw == w))

    def _call_full_range(self, bgr: np.ndarray, t0: float) -> np.ndarray:
        """A scale-1 model on full-range luma (the denoisers): the luma change goes onto B, G and R alike,
        which keeps the chroma exactly (no colour conversion round trip, and a grey frame stays grey)."""
        h, w = bgr.shape[:2]
        if self._luts is not None and not self._tiles_for(h, w):
            # Bytes all the way: OpenCV's rounded BT.601 grey, the tables, and an int16 luma change.
            y8 = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
            t1 = time.perf_counter()
            y_out = self.denoise_plane(y8, self.strength)
            t2 = time.perf_counter()
            delta = cv2.subtract(y_out, y8, dtype=cv2.CV_16S)
            out = cv2.add(bgr, cv2.merge([delta, delta, delta]), dtype=cv2.CV_8U)  # saturating
        else:
            y = full_range_luma(bgr)
            t1 = time.perf_counter()
            y_out = (self.upscale_y(y * self._in_scale + self._in_offset) - self._in_offset) / self._in_scale
            t2 = time.perf_counter()
            out = with_luma_delta(bgr, y_out - y)
        t3 = time.perf_counter()
        self.last_timing_ms = {"preprocess": (t1 - t0) * 1e3, "invoke": (t2 - t1) * 1e3,
                               "postprocess": (t3 - t2) * 1e3}
        return out

    def _call_u8(self, bgr: np.ndarray, t0: float) -> np.ndarray:
        lut_in, lut_out = self._luts
        ycc = bgr_to_ycbcr_u8(bgr)
        x = self._native_input(cv2.LUT(ycc[..., 0], lut_in))
        h, w = bgr.shape[:2]
        t1 = time.perf_counter()
        y_hr = self._expect(self.backend.run_native(x), x.shape[1:3])[0, :h * self.scale, :w * self.scale, 0]
        t2 = time.perf_counter()
        ycc_hr = ycc.copy() if self.scale == 1 else \
            cv2.resize(ycc, (w * self.scale, h * self.scale), interpolation=cv2.INTER_CUBIC)
        ycc_hr[..., 0] = cv2.LUT(np.ascontiguousarray(y_hr), lut_out)
        out = ycbcr_u8_to_bgr(ycc_hr)
        t3 = time.perf_counter()
        self.last_timing_ms = {"preprocess": (t1 - t0) * 1e3, "invoke": (t2 - t1) * 1e3,
                               "postprocess": (t3 - t2) * 1e3}
        return out

    def denoise_plane(self, plane: np.ndarray, strength: float) -> np.ndarray:
        """One uint8 plane (luma or a chroma plane, full range) through a scale-1 model at noise level
        ``strength``: in bytes when the artifact allows, else in float (tiled like :meth:`upscale_y`)."""
        h, w = plane.shape[:2]
        if self._luts is not None and not self._tiles_for(h, w):
            lut_in, lut_out = self._luts
            x = self._native_input(cv2.LUT(plane, lut_in), strength)
            res = self._expect(self.backend.run_native(x), x.shape[1:3])
            return cv2.LUT(np.ascontiguousarray(res[0, :h, :w, 0]), lut_out)
        y = plane.astype(np.float32) * self._in_scale + self._in_offset
        out = (self.tiled(self._run_checked, y, strength) - self._in_offset) / self._in_scale
        return np.clip(np.round(out), 0, 255).astype(np.uint8)

    def _native_input(self, q: np.ndarray, strength: Optional[float] = None) -> np.ndarray:
        """(H, W) plane in the input tensor's dtype → the (1, H', W', C) tensor: padded to the size multiple, with a
        denoiser's noise-level plane (``strength``, default :attr:`strength`); a plain view of ``q`` for the SR
        models (no copy on their hot path)."""
        q = self._pad_to_multiple(q)
        if not self._level_input:
            return q[None, :, :, None]
        spec = self.manifest.input.quantization
        sigma = self.strength if strength is None else strength
        level = np.clip(round(sigma / 255.0 / spec.scale) + spec.zero_point, 0, 255)
        return np.stack([q, np.full_like(q, level)], axis=-1)[None]

    def bicubic(self, frame: np.ndarray) -> np.ndarray:
        """What ``--compare`` shows beside the model: the plain bicubic upscale (a denoiser: the frame as is)."""
        bgr = as_bgr(frame)
        if self.scale == 1:
            return bgr.copy()
        h, w = bgr.shape[:2]
        return cv2.resize(bgr, (w * self.scale, h * self.scale), interpolation=cv2.INTER_CUBIC)

    def _pad_to_multiple(self, plane: np.ndarray) -> np.ndarray:
        """Pad (H, W) by reflection up to the model's size multiple (the denoising evaluator does the same)."""
        m = self._multiple
        ph, pw = (-plane.shape[0]) % m, (-plane.shape[1]) % m
        return cv2.copyMakeBorder(plane, 0, ph, 0, pw, cv2.BORDER_REFLECT_101) if ph or pw else plane

    def _model_input(self, y: np.ndarray, strength: Optional[float] = None) -> np.ndarray:
        """(H, W) model-space luma → (H, W, C): luma, plus the noise-level map (``strength``, default
        :attr:`strength`) for such denoisers."""
        y = np.ascontiguousarray(y, dtype=np.float32)
        if not self._level_input:
            return y[:, :, None]
        sigma = self.strength if strength is None else strength
        return np.stack([y, np.full_like(y, sigma / 255.0)], axis=-1)

    def upscale_y(self, y: np.ndarray) -> np.ndarray:
        """Model-space luma (H, W) float32 → (H·s, W·s) float32, tiling when the artifact needs it."""
        return self.tiled(self._run_checked, y)

    @property
    def stats(self):
        """The backend's :class:`~edge_runtime.inference.backends.CallStats`: every model call, counted and timed."""
        return self.backend.stats

    def _run_checked(self, x: np.ndarray) -> np.ndarray:
        """``backend.run``, its output refused unless it is ``scale`` times its input."""
        return self._expect(np.asarray(self.backend.run(x)), x.shape[1:3])

    def tile_for(self, h: int, w: int) -> tuple:
        """The tile an (h, w) plane is cut into (the artifact's fixed size, else :data:`AUTO_TILE` or whole)."""
        th, tw = self.tile if self.tile != (None, None) else AUTO_TILE
        return th or h, tw or w

    def tiled(self, run, y: np.ndarray, strength: Optional[float] = None) -> np.ndarray:
        """``y`` through ``run`` exactly as :meth:`upscale_y` tiles it for the artifact (same padding, tiles,
        halo and batches): how the accuracy gate runs the float model, so that it compares like with like.

        ``y`` is model-space luma (H, W), to which a denoiser's noise-level map at :attr:`strength` is added,
        or the model's whole input (H, W, C) (the gate's pictures carry their own noise level)."""
        h, w = y.shape[:2]
        s = self.scale
        if not self._tiles_for(h, w):
            x = self._model_input(self._pad_to_multiple(y), strength) if y.ndim == 2 else self._pad_to_multiple(y)
            return np.asarray(run(np.ascontiguousarray(x, dtype=np.float32)[None]))[0, :h * s, :w * s, 0]
        # Padded to the size multiple as a whole-frame run pads, so the tiles see the same border.
        x = self._model_input(self._pad_to_multiple(y), strength) if y.ndim == 2 else self._pad_to_multiple(y)
        out = run_tiled(run, x, self.tile_for(h, w), self.halo, s, self.max_batch, align=self._multiple)
        return out[:h * s, :w * s]

    def _expect(self, res: np.ndarray, hw_in: tuple) -> np.ndarray:
        """The model's output, refused unless it is ``scale`` times its input (the manifest may lie)."""
        want = (hw_in[0] * self.scale, hw_in[1] * self.scale)
        if res.ndim != 4 or tuple(res.shape[1:3]) != want or res.shape[3] != 1:
            raise UserError(f"'{self.model_path.name}' returned {list(res.shape)} for a {hw_in[0]}x{hw_in[1]} input, "
                            f"not x{self.scale} as its manifest says; convert the model again")
        return res

    def describe(self) -> dict:
        """Model, format, scale, tiling and backend details (for stats and logs)."""
        th, tw = self.tile
        from ..machine import usable_cores

        return {"model": self.model_path.name, "model_name": self.choice.model, "chosen_by": self.choice.how,
                "format": self.manifest.format, "task": self.task, "scale": self.scale,
                **({"strength": self.strength, "chroma": self.chroma} if self.strength is not None else {}),
                "tile": None if th is None and tw is None else [th, tw], "halo": self.halo,
                "batch": self.max_batch, **self.backend.describe(),
                "threads_from": "as given" if self._threads_given else
                f"usable cores ({usable_cores()}, os.sched_getaffinity)"}

