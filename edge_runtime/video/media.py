"""Enhancing picture and video files (``deconv-edge enhance``)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

import cv2

from deconv_edge_core.errors import UserError
from deconv_edge_core.fsutil import atomic_path
from deconv_edge_core.outputs import check_output_file, check_output_folder, same_file
from edge_runtime.inference.enhance import Enhancer
from edge_runtime.inference.limits import check_frame, picture_problem

from .pictures import read_picture
from .sinks.video import FOURCC, VideoWriter
from .sources.dir import PICTURE_SUFFIXES

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv")


def media_kind(path: Path) -> str:
    """``picture`` or ``video`` by suffix.

    Raises:
        UserError: neither.
    """
    suffix = path.suffix.lower()
    if suffix in PICTURE_SUFFIXES:
        return "picture"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    raise UserError(f"'{path}' is neither a picture ({', '.join(PICTURE_SUFFIXES)}) nor a video "
                    f"({', '.join(VIDEO_SUFFIXES)})")


def expand_inputs(inputs: Iterable[str]) -> list[Path]:
    """Files as given; folders → their pictures and videos in name order.

    Raises:
        UserError: a missing path, or nothing to do.
    """
    files = []
    for text in inputs:
        p = Path(text)
        if p.is_dir():
            files += sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in PICTURE_SUFFIXES + VIDEO_SUFFIXES)
        elif p.is_file():
            media_kind(p)
            files.append(p)
        else:
            raise UserError(f"input '{p}' does not exist")
    if not files:
        raise UserError("no picture or video to enhance in the inputs given")
    return files


def plan_outputs(files: list[Path], out: str, scale: int) -> list[tuple[Path, Path]]:
    """Pair each input with its output path.

    One input and an ``out`` with a suffix that is not a folder: ``out`` is the file. Otherwise ``out`` is a
    folder and each output is ``NAME_x{scale}.EXT`` in it (videos in a container OpenCV cannot write become
    ``.mp4``).

    Raises:
        UserError: output kind differs from the input's, or an output would overwrite its input.
    """
    out_path = Path(out)
    as_folder = len(files) > 1 or out_path.is_dir() or out.endswith(("/", os.sep)) or not out_path.suffix
    # Before any work: a read-only folder or a folder named like the file must not cost a whole run.
    check_output_folder(out_path, "-o") if as_folder else check_output_file(out_path, "-o")
    pairs = []
    for f in files:
        kind = media_kind(f)
        if as_folder:
            suffix = f.suffix if kind == "picture" or f.suffix.lower() in FOURCC else ".mp4"
            target = out_path / f"{f.stem}_x{scale}{suffix}"
        else:
            target = out_path
            if media_kind(target) != kind:
                raise UserError(f"'{f}' is a {kind} but the output '{target}' is not: give a {kind} file name")
            if kind == "video" and target.suffix.lower() not in FOURCC:
                raise UserError(f"cannot write video '{target}': use one of {', '.join(FOURCC)}")
        if target.resolve() == f.resolve() or same_file(target, f):
            raise UserError(f"output '{target}' would overwrite its input")
        if as_folder:
            check_output_file(target, "-o")
        pairs.append((f, target))
    return pairs


def enhance_picture(enhancer: Enhancer, src: Path, dst: Path) -> tuple:
    """Returns (input size, output size) as (w, h)."""
    img = read_picture(src, cv2.IMREAD_UNCHANGED)
    if img.dtype != "uint8":
        # 16-bit PNG/TIFF: the models work on 8-bit.
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(int(img.max()), 1))
    out = enhancer(img)
    if img.ndim == 2 or img.shape[2] == 1:
        # Grey in, grey out: with neutral chroma B, G and R agree (to rounding).
        out = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)
    with atomic_path(dst) as tmp:
        try:
            ok = cv2.imwrite(str(tmp), out)
        except cv2.error:
            ok = False
        # A full disk can leave a cut-short file behind a True: check its end before it replaces anything.
        if not ok or tmp.stat().st_size == 0 or picture_problem(tmp):
            raise UserError(f"cannot write picture '{dst}' (disk full, or an I/O error); an earlier file there is "
                            "untouched; free space or write elsewhere")
    return (img.shape[1], img.shape[0]), (out.shape[1], out.shape[0])


class Progress:
    """A one-line progress bar on a terminal; silent otherwise (logs stay clean)."""

    def __init__(self, label: str, total: Optional[int], stream=sys.stderr, enabled: Optional[bool] = None):
        self.label, self.total, self.stream = label, total if total and total > 0 else None, stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self.started = time.perf_counter()
        self._last = 0.0

    def update(self, n: int) -> None:
        now = time.perf_counter()
        if not self.enabled or now - self._last < 0.2:
            return
        self._last = now
        rate = n / max(now - self.started, 1e-9)
        if self.total:
            frac = min(n / self.total, 1.0)
            bar = "#" * int(frac * 30)
            eta = (self.total - n) / rate if rate > 0 else 0
            text = f"{self.label} [{bar:<30}] {n}/{self.total} {rate:.1f} fps, {eta:.0f} s left"
        else:
            text = f"{self.label} {n} frames {rate:.1f} fps"
        self.stream.write("\r" + text[:120].ljust(80))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 80 + "\r")
            self.stream.flush()


def enhance_video(enhancer: Enhancer, src: Path, dst: Path, progress: bool = True) -> dict:
    """Enhance every frame of ``src`` into ``dst`` (same frame rate; audio is not carried over).

    Returns frames, sizes and the rate achieved. ``dst`` appears only once complete.
    """
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise UserError(f"cannot decode '{src}' as a video")
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and 0 < fps < 1000 else 30.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    if w > 0 and h > 0:
        try:
            # From the container's header, before the first frame is decoded.
            check_frame(h, w, enhancer.scale, f"video '{src}'")
        except BaseException:
            cap.release()
            raise
    writer = VideoWriter(dst, fps)
    bar = Progress(src.name, total, enabled=None if progress else False)
    n, size_in, started = 0, None, time.perf_counter()
    try:
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            size_in = (frame.shape[1], frame.shape[0])
            writer.write(enhancer(frame))
            n += 1
            bar.update(n)
    except BaseException:
        writer.abort()  # no half-written video under the final name
        raise
    finally:
        bar.close()
        cap.release()
    if n == 0:
        writer.abort()
        raise UserError(f"'{src}' has no frame OpenCV can decode")
    writer.close()
    wall = time.perf_counter() - started
    return {"frames": n, "size_in": size_in, "size_out": writer.size, "fps": n / wall if wall > 0 else 0.0}


def enhance_files(enhancer: Enhancer, pairs: list[tuple[Path, Path]], progress: bool = True,
                  say: Callable[[str], None] = print) -> None:
    """Enhance each (input, output) pair, one line per file.

    With several inputs, one that cannot be read (damaged, cut short, too large) is skipped with a warning
    and the others are done; the skipped ones are counted in the error raised at the end.

    Raises:
        UserError: the only input failed, or some inputs were skipped.
    """
    skipped = []
    for src, dst in pairs:
        if len(pairs) == 1:
            _enhance_one(enhancer, src, dst, progress, say)
            continue
        try:
            _enhance_one(enhancer, src, dst, progress, say)
        except UserError as exc:
            skipped.append(src)
            print(f"warning: skipped: {exc}", file=sys.stderr, flush=True)
    if skipped:
        raise UserError(f"{len(skipped)} of {len(pairs)} input(s) skipped (see the warnings above); "
                        f"{len(pairs) - len(skipped)} done")


def _enhance_one(enhancer: Enhancer, src: Path, dst: Path, progress: bool, say: Callable[[str], None]) -> None:
    t0 = time.perf_counter()
    if media_kind(src) == "picture":
        (w, h), (W, H) = enhance_picture(enhancer, src, dst)
        say(f"{src} {w}x{h} -> {dst} {W}x{H} ({(time.perf_counter() - t0) * 1e3:.0f} ms)")
    else:
        r = enhance_video(enhancer, src, dst, progress=progress)
        (w, h), (W, H) = r["size_in"], r["size_out"]
        say(f"{src} {r['frames']} frames {w}x{h} -> {dst} {W}x{H} ({r['fps']:.1f} fps)")
