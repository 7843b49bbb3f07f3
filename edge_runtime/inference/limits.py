"""Memory bounds for inputs from outside: a picture's size from its header, every buffer against a budget.

A 97 KB PNG can claim 10000x10000 pixels and a 100-byte header 30000x30000; decoding them asks for gigabytes
on a device that has one. So sizes are checked *before* anything is allocated: pictures by the width and
height in their header (:func:`picture_size`), frames and tiles by what enhancing them costs
(:func:`check_frame`), against a limit the user can raise (``--max-pixels``) and the memory this machine has.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Optional

from deconv_edge_core.errors import UserError

#: Largest input picture or frame, in pixels, unless ``--max-pixels`` says otherwise: 40 MP is a large
#: camera photo (7300x5500); at x4 its output alone is 640 MP.
DEFAULT_MAX_PIXELS = 40_000_000
#: Working memory of Enhancer.__call__ per input pixel plus per *output* pixel (planes, colour conversion,
#: tiles, output): peak RSS growth on a 1500x1500 frame was 238 / 678 B per input pixel at x2 / x4 (int8
#: TFLite) and 205 / 601 (ONNX fp32); these constants give 240 / 720, an upper bound of both.
BYTES_PER_INPUT_PIXEL = 80
BYTES_PER_OUTPUT_PIXEL = 40
#: What running the model costs per pixel of what goes through it at once (a tile, or the whole frame),
#: ``MODEL_BYTES_PER_PIXEL + MODEL_BYTES_PER_PIXEL_PER_SCALE2 * scale²``: peak RSS growth at 1024x1024 tiles
#: was 871 B (int8 TFLite x2), 522 B (ONNX fp32 x2) and 1346 B (int8 TFLite x4) per tile pixel.
MODEL_BYTES_PER_PIXEL = 800
MODEL_BYTES_PER_PIXEL_PER_SCALE2 = 64
#: Share of the memory available at start that one run may plan to use.
BUDGET_SHARE = 0.8
#: Files read whole that are small by nature (manifests, SHA256SUMS, bundle.json): refuse anything larger.
MAX_MANIFEST_BYTES = 1 << 20

_max_pixels = DEFAULT_MAX_PIXELS


def set_max_pixels(pixels: Optional[int]) -> None:
    """Set the picture/frame pixel limit for this process (``--max-pixels``); ``None`` = the default."""
    global _max_pixels
    _max_pixels = DEFAULT_MAX_PIXELS if pixels is None else int(pixels)
    # OpenCV's own decoder limit too, for formats whose header is not read here (read at first decode).
    os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(_max_pixels)


def max_pixels() -> int:
    return _max_pixels


def available_memory_bytes() -> Optional[int]:
    """``MemAvailable`` (Linux), else physical memory; ``None`` when unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError, AttributeError):
        return None


def memory_budget_bytes() -> Optional[int]:
    """What one run may plan to allocate: ``DECONV_EDGE_MEMORY_MB`` if set, else a share of what is free."""
    env = os.environ.get("DECONV_EDGE_MEMORY_MB")
    if env:
        try:
            return int(float(env) * 2**20)
        except ValueError:
            raise UserError(f"DECONV_EDGE_MEMORY_MB='{env}' is not a number of megabytes") from None
    avail = available_memory_bytes()
    return int(avail * BUDGET_SHARE) if avail else None


def enhance_bytes(h: int, w: int, scale: int) -> int:
    """Working memory to enhance one ``h`` x ``w`` frame ``scale`` times, the model's part aside."""
    return h * w * (BYTES_PER_INPUT_PIXEL + BYTES_PER_OUTPUT_PIXEL * scale * scale)


def model_bytes(pixels: int, scale: int) -> int:
    """Memory the model takes for ``pixels`` input pixels at once (see the constants above)."""
    return int(pixels) * (MODEL_BYTES_PER_PIXEL + MODEL_BYTES_PER_PIXEL_PER_SCALE2 * scale * scale)


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n / 1024:,.0f} KB"


def check_pixels(h: int, w: int, what: str) -> None:
    """Refuse an ``h`` x ``w`` picture over the pixel limit.

    Raises:
        UserError: with the limit and how to raise it.
    """
    if h * w > _max_pixels:
        raise UserError(f"{what} is {w}x{h} ({h * w / 1e6:.1f} MP), over the limit of {_max_pixels / 1e6:g} MP; "
                        f"use a smaller one, or raise the limit with --max-pixels {h * w}")


def check_frame(h: int, w: int, scale: int, what: str = "the frame", extra_bytes: int = 0) -> None:
    """Refuse a frame whose enhancement would not fit the pixel limit or the memory budget.

    Raises:
        UserError: with the numbers and what to do.
    """
    check_pixels(h, w, what)
    need = enhance_bytes(h, w, scale) + int(extra_bytes)
    budget = memory_budget_bytes()
    if budget is not None and need > budget:
        raise UserError(f"enhancing {what} ({w}x{h}, x{scale}) needs about {_mb(need)} of memory, more than the "
                        f"{_mb(budget)} this machine can spare; use a smaller input or a smaller --tile (or free "
                        "memory)")


def check_allocation(nbytes: int, what: str) -> None:
    """Refuse one buffer larger than the memory budget (a tile batch, a demo frame).

    Raises:
        UserError: with the numbers.
    """
    budget = memory_budget_bytes()
    if budget is not None and nbytes > budget:
        raise UserError(f"{what} needs {_mb(nbytes)} of memory, more than the {_mb(budget)} this machine can "
                        "spare; use smaller sizes")


def read_small(path: str | Path, what: str, limit: int = MAX_MANIFEST_BYTES) -> bytes:
    """A small file's bytes, refusing one larger than ``limit`` before reading it.

    Raises:
        UserError: too large or unreadable.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > limit:
            raise UserError(f"{what} '{path}' is {_mb(size)}, larger than any real one ({_mb(limit)} at most); "
                            "it is not what it claims to be")
        with open(path, "rb") as fh:
            return fh.read(limit + 1)[:limit]
    except OSError as exc:
        raise UserError(f"cannot read {what} '{path}' ({exc.strerror or exc})") from None


# ---- picture headers --------------------------------------------------------------------------------------------
def picture_size(path: str | Path) -> Optional[tuple]:
    """``(height, width)`` from a picture's header (PNG, JPEG, BMP, GIF, WebP, TIFF); ``None`` if unknown.

    Reads at most a few hundred kilobytes (JPEG markers before the frame header), never decodes.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
                w, h = struct.unpack(">II", head[16:24])
                return h, w
            if head[:2] == b"\xff\xd8":
                return _jpeg_size(fh)
            if head[:2] == b"BM" and len(head) >= 26:
                w, h = struct.unpack("<ii", head[18:26])
                return abs(h), abs(w)
            if head[:6] in (b"GIF87a", b"GIF89a"):
                w, h = struct.unpack("<HH", head[6:10])
                return h, w
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                return _webp_size(head)
            if head[:4] in (b"II*\x00", b"MM\x00*"):
                return _tiff_size(fh, head[:2] == b"II")
    except (OSError, struct.error, ValueError):
        return None
    return None


def _jpeg_size(fh) -> Optional[tuple]:
    fh.seek(2)
    for _ in range(4096):  # markers before the frame header (EXIF, ICC, ...): bounded
        byte = fh.read(1)
        while byte and byte != b"\xff":
            byte = fh.read(1)
        while byte == b"\xff":
            byte = fh.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        (length,) = struct.unpack(">H", fh.read(2))
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            _precision, h, w = struct.unpack(">BHH", fh.read(5))
            return h, w
        fh.seek(length - 2, os.SEEK_CUR)
    return None


def _webp_size(head: bytes) -> Optional[tuple]:
    kind = head[12:16]
    if kind == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", head[26:30])
        return h & 0x3FFF, w & 0x3FFF
    if kind == b"VP8L" and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    if kind == b"VP8X":
        w = int.from_bytes(head[24:27], "little") + 1
        h = int.from_bytes(head[27:30], "little") + 1
        return h, w
    return None


def _tiff_size(fh, little: bool) -> Optional[tuple]:
    end = "<" if little else ">"
    fh.seek(4)
    (ifd,) = struct.unpack(end + "I", fh.read(4))
    fh.seek(ifd)
    (count,) = struct.unpack(end + "H", fh.read(2))
    size = {}
    for _ in range(min(count, 512)):
        tag, typ, _n, value = struct.unpack(end + "HHI4s", fh.read(12))
        if tag in (256, 257):
            size[tag] = struct.unpack(end + ("H" if typ == 3 else "I"), value[:2 if typ == 3 else 4])[0]
    return (size[257], size[256]) if 256 in size and 257 in size else None


def check_picture_file(path: str | Path) -> Optional[tuple]:
    """Refuse a picture whose header claims more pixels than allowed, before decoding it.

    Returns:
        ``(height, width)`` from the header, or ``None`` when the format's header is not read here (OpenCV's
        own limit, set by :func:`set_max_pixels`, then applies).

    Raises:
        UserError: over the limit.
    """
    size = picture_size(path)
    if size is not None:
        check_pixels(size[0], size[1], f"picture '{path}'")
    return size


def picture_problem(path: str | Path) -> Optional[str]:
    """Why a JPEG or PNG file is cut short (its end marker missing), or ``None``.

    Decoders fill a truncated picture's missing part with grey and report it only on stderr, so the end is
    checked here: JPEG must end with EOI (``FF D9``) after its last scan, PNG with an ``IEND`` chunk.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 4096))
            tail = fh.read()
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if head[:2] == b"\xff\xd8":
        # Cameras pad or append after EOI; entropy-coded data never holds FF D9 (0xFF is stuffed with 0x00).
        stripped = tail.rstrip(b"\x00\xff \r\n\t")
        if not stripped.endswith(b"\xff\xd9") and b"\xff\xd9" not in tail[-1024:]:
            return "truncated (no JPEG end marker): the file was cut short"
    elif head.startswith(b"\x89PNG\r\n\x1a\n"):
        if b"IEND" not in tail[-64:]:
            return "truncated (no PNG IEND chunk): the file was cut short"
    return None
