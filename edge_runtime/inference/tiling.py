"""The one tiler: a luma plane cut into overlapping tiles, each run, the kept centres stitched.

Fixed-shape artifacts (Edge TPU, fixed-size exports) only take one input size, so a plane is cut into tiles
that overlap by a *halo* of context on each side; each tile keeps only its centre, and the cuts lie in the
middle of the overlaps. As long as the halo covers the network's receptive radius, the stitched result is the
one a whole-plane run would give away from the plane's borders. A plane smaller than a tile is padded up to it
by repeating its edge pixels (only the border pixels see the padding).

The runtime (:class:`~edge_runtime.inference.enhance.Enhancer`) and the converter's accuracy gate both tile
with :func:`run_tiled`, so the gate measures the tiling a device runs.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

#: ``(N, h, w, 1)`` float32 → ``(N, h·s, w·s, 1)``: a backend's ``run``, or a float model for reference.
RunFn = Callable[[np.ndarray], np.ndarray]


def tile_spans(length: int, tile: int, halo: int, align: int = 1) -> list[tuple[int, int, int]]:
    """Cover ``0..length`` with tiles of ``tile`` pixels that overlap by at least ``2 * halo``.

    Returns ``(start, keep_from, keep_to)`` per tile, in frame coordinates: the tile reads
    ``start .. start + tile`` and contributes ``keep_from .. keep_to``. The kept parts partition the frame, and
    every cut between two tiles has at least ``halo`` pixels of context on both sides. ``length <= tile`` gives
    one tile (the caller pads the frame up to ``tile``). With ``align`` > 1 (a model with stride-2 levels) every
    start is a multiple of it, so each tile sees the stride grid a whole-frame run sees; ``length`` and ``tile``
    must then be multiples of ``align`` too.

    Raises:
        ValueError: ``tile`` leaves nothing to keep once the halos are taken off.
    """
    if length <= tile:
        return [(0, 0, length)]
    step = (tile - 2 * halo) // align * align
    if step < 1:
        raise ValueError(f"tile {tile} is too small for a halo of {halo} pixels on each side")
    starts = list(range(0, length - tile, step)) + [length - tile]
    if len(starts) > 1 and starts[-1] == starts[-2]:
        starts.pop()
    cuts = [0] + [(b + a + tile) // 2 for a, b in zip(starts, starts[1:])] + [length]
    return [(s, cuts[i], cuts[i + 1]) for i, s in enumerate(starts)]


def run_tiled(run: RunFn, y: np.ndarray, tile_hw: tuple, halo: int, scale: int, max_batch: int = 1,
              align: int = 1) -> np.ndarray:
    """Run the plane ``y`` (H, W), or a model input (H, W, C), through ``run`` in tiles of ``tile_hw``; returns
    (H·s, W·s).

    Tiles go to ``run`` ``max_batch`` at a time; a short last batch is zero-padded, so ``run`` always sees one
    input shape (no interpreter re-allocation). With ``align`` > 1 the padded plane and every tile start are
    multiples of it (see :func:`tile_spans`).
    """
    if y.ndim == 2:
        y = y[:, :, None]
    h, w, c = y.shape
    th, tw = tile_hw
    # Planes smaller than a tile are padded up to it (only the border pixels see the padding).
    ph, pw = max(h, th), max(w, tw)
    ph, pw = ph + (-ph) % align, pw + (-pw) % align
    if (ph, pw) != (h, w):
        y = np.pad(np.asarray(y, np.float32), ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    s = int(scale)
    spans = [(ys, xs) for ys in tile_spans(ph, th, halo, align) for xs in tile_spans(pw, tw, halo, align)]
    out = np.empty((ph * s, pw * s), dtype=np.float32)
    for i in range(0, len(spans), max_batch):
        chunk = spans[i:i + max_batch]
        batch = np.zeros((max_batch, th, tw, c), dtype=np.float32)
        for j, ((y0, _, _), (x0, _, _)) in enumerate(chunk):
            batch[j] = y[y0:y0 + th, x0:x0 + tw]
        res = np.asarray(run(batch))
        for j, ((y0, yf, yt), (x0, xf, xt)) in enumerate(chunk):
            out[yf * s:yt * s, xf * s:xt * s] = res[j, (yf - y0) * s:(yt - y0) * s, (xf - x0) * s:(xt - x0) * s, 0]
    return out[:h * s, :w * s]
