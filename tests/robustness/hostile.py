"""Hostile files, made at test time: damaged pictures, header bombs, tampered manifests, broken bundles.

Every builder writes real bytes a real decoder or parser reads; nothing is mocked.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import tarfile
import zlib
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.inference.default_model import MODELS_DIR

#: The shipped model every tampered copy starts from: int8 TFLite, dynamic shape, x2 (runs on any CPU).
BASE_MODEL = MODELS_DIR / "fsrcnn_x2_int8.tflite"


def good_picture(path: Path, w: int = 40, h: int = 30, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


def good_video(path: Path, frames: int = 4, w: int = 32, h: int = 24) -> Path:
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, 10.0, (w, h))
    assert writer.isOpened()
    rng = np.random.default_rng(frames)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))  # noise: big frames that fill a disk
    writer.release()
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header_bomb(path: Path, w: int = 30000, h: int = 30000) -> Path:
    """About 100 bytes: a PNG signature and IHDR claiming ``w`` x ``h`` RGB, a token IDAT, IEND."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + _png_chunk(b"IEND", b""))
    return path


def png_valid_huge(path: Path, w: int = 10000, h: int = 10000) -> Path:
    """A complete, valid grey PNG of ``w`` x ``h`` zeros (about 100 KB; decoding it takes w*h bytes and more)."""
    comp = zlib.compressobj(9)
    row = b"\0" * (w + 1)  # filter byte + pixels
    body = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body)
                     + _png_chunk(b"IEND", b""))
    return path


def jpeg_header_bomb(path: Path, w: int = 65000, h: int = 65000) -> Path:
    """A JPEG start and a baseline frame header (SOF0) claiming ``w`` x ``h``, then an end marker."""
    sof = struct.pack(">BHHB", 8, h, w, 3) + b"".join(bytes([i, 0x11, 0]) for i in (1, 2, 3))
    path.write_bytes(b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9")
    return path


def bmp_header_bomb(path: Path, w: int = 50000, h: int = 50000) -> Path:
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
    path.write_bytes(b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + info)
    return path


def tiff_header_bomb(path: Path, w: int = 60000, h: int = 60000) -> Path:
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1), (273, 4, 1, 8),
               (277, 3, 1, 1), (279, 4, 1, w * h)]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", t, typ, n) + (struct.pack("<HH", v, 0) if typ == 3 else struct.pack("<I", v))
        for t, typ, n, v in entries) + struct.pack("<I", 0)
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd)
    return path


def webp_header_bomb(path: Path, w: int = 16000, h: int = 16000) -> Path:
    vp8x = bytes([0, 0, 0, 0]) + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def truncated(path: Path, source: Path, keep: float = 0.5) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[:max(1, int(len(data) * keep))])
    return path


def good_jpeg(path: Path, w: int = 64, h: int = 48) -> Path:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.dstack([(xx * 4) % 256, (yy * 5) % 256, ((xx + yy) * 3) % 256]).astype(np.uint8)
    assert cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path


# ---- models and manifests ---------------------------------------------------------------------------------
def copy_model(folder: Path, name: str = "m.tflite", edit=None, artifact_bytes: bytes | None = None,
               fix_hash: bool = True) -> Path:
    """The shipped model copied into ``folder`` as ``name``; ``edit(manifest_dict)`` tampers with its manifest.

    ``artifact_bytes`` replaces the model file (with the manifest's hash updated unless ``fix_hash`` is off).
    """
    import hashlib

    folder.mkdir(parents=True, exist_ok=True)
    art = folder / name
    if artifact_bytes is None:
        shutil.copy(BASE_MODEL, art)
    else:
        art.write_bytes(artifact_bytes)
    manifest = json.loads(BASE_MODEL.with_name(BASE_MODEL.name + ".json").read_text())
    manifest["artifact"]["file"] = name
    if artifact_bytes is not None and fix_hash:
        manifest["artifact"]["sha256"] = hashlib.sha256(artifact_bytes).hexdigest()
        manifest["artifact"]["size_bytes"] = len(artifact_bytes)
    if edit is not None:
        edit(manifest)
    text = manifest if isinstance(manifest, (str, bytes)) else json.dumps(manifest)
    (folder / (name + ".json")).write_text(text)
    return art


def write_manifest_text(art: Path, text: str | bytes) -> Path:
    mpath = art.with_name(art.name + ".json")
    mpath.write_bytes(text.encode() if isinstance(text, str) else text)
    return art


# ---- bundles -------------------------------------------------------------------------------------------------
def good_bundle(folder: Path, name: str = "b.tar.gz") -> Path:
    """A real bundle of the shipped model, made by the real CLI's code path."""
    from edge_runtime.ship.bundle import make_bundle

    folder.mkdir(parents=True, exist_ok=True)
    art = copy_model(folder / "src")
    out, _ = make_bundle([art], folder / name)
    shutil.rmtree(folder / "src")
    return out


def tar_with(path: Path, members: list[tuple[str, bytes | str, str]]) -> Path:
    """A ``.tar.gz`` with hand-made members: ``(name, data_or_link_target, kind)``, kind file/symlink/dir."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data, kind in members:
            ti = tarfile.TarInfo(name)
            if kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, str(data)
                tar.addfile(ti)
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
                tar.addfile(ti)
            else:
                raw = data.encode() if isinstance(data, str) else data
                ti.size = len(raw)
                tar.addfile(ti, io.BytesIO(raw))
    return path


def bundle_with_big_manifest(path: Path, mib: int = 64) -> Path:
    """A small ``.tar.gz`` whose manifest member holds ``mib`` MiB (of spaces): a decompression bomb."""
    import hashlib

    big = b" " * (mib << 20)
    sums = f"{hashlib.sha256(big).hexdigest()}  models/x.tflite.json\n".encode()
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, data in (("models/x.tflite.json", big), ("SHA256SUMS", sums)):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return path


def rebundle(path: Path, source: Path, edit) -> Path:
    """Copy bundle ``source`` to ``path`` with ``edit(dict name -> bytes)`` applied to its files."""
    with tarfile.open(source, "r:gz") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    edit(files)
    return tar_with(path, [(n, d, "file") for n, d in files.items()])
