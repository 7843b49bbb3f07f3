"""The manifest essentials embedded in an artifact file, read with the standard library alone.

``convert`` writes a JSON object (schema version, format, task, scale, colour space, value range, upsampler,
source model's sha256) into each artifact: a TFLite metadata entry named :data:`KEY`, or an ONNX
``metadata_props`` entry of that key. The runtime reads it back and checks it against the manifest
(:func:`embedded_mismatches`): a manifest copied beside the wrong file, or edited by hand, is refused even when
someone also fixed up its sha256. Both readers parse just the containers they need (the flatbuffer tables of a
TFLite file, the protobuf wire format of an ONNX file), so devices need no TensorFlow and no ``onnx`` package.
"""

from __future__ import annotations

import json
import struct
from typing import Optional

KEY = "deconv_edge"
#: Manifest fields the embedded object must agree with (embedded key -> how to read it from a manifest).
CHECKED = ("schema_version", "format", "task", "scale", "color_space", "value_range", "upsampler",
           "source_model_sha256")


# ---- TFLite: flatbuffers --------------------------------------------------------------------------------------
def _u32(buf: bytes, pos: int) -> int:
    return struct.unpack_from("<I", buf, pos)[0]


def _table_field(buf: bytes, table: int, index: int) -> Optional[int]:
    """Absolute position of field ``index`` of the table at ``table``, or ``None`` when absent."""
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    vt_size = struct.unpack_from("<H", buf, vtable)[0]
    slot = 4 + 2 * index
    if slot >= vt_size:
        return None
    off = struct.unpack_from("<H", buf, vtable + slot)[0]
    return table + off if off else None


def _deref(buf: bytes, pos: int) -> int:
    return pos + _u32(buf, pos)


def _vector(buf: bytes, pos: int) -> tuple:
    """(first element position, length) of the vector a field at ``pos`` points to."""
    vec = _deref(buf, pos)
    return vec + 4, _u32(buf, vec)


def _string(buf: bytes, pos: int) -> str:
    start, n = _vector(buf, pos)
    return buf[start:start + n].decode("utf-8", "replace")


def tflite_metadata(buf: bytes) -> Optional[dict]:
    """The :data:`KEY` metadata object of a TFLite flatbuffer, or ``None`` (none embedded, or not parseable).

    Model table fields used: 4 ``buffers`` ([Buffer]), 6 ``metadata`` ([Metadata]); Metadata: 0 ``name``,
    1 ``buffer`` (index); Buffer: 0 ``data`` ([ubyte]).
    """
    try:
        model = _u32(buf, 0)
        meta_field, buffers_field = _table_field(buf, model, 6), _table_field(buf, model, 4)
        if meta_field is None or buffers_field is None:
            return None
        start, n = _vector(buf, meta_field)
        for i in range(n):
            meta = _deref(buf, start + 4 * i)
            name_pos, index_pos = _table_field(buf, meta, 0), _table_field(buf, meta, 1)
            if name_pos is None or _string(buf, name_pos) != KEY:
                continue
            b_start, b_n = _vector(buf, buffers_field)
            index = _u32(buf, index_pos) if index_pos is not None else 0
            if index >= b_n:
                return None
            data_pos = _table_field(buf, _deref(buf, b_start + 4 * index), 0)
            if data_pos is None:
                return None
            d_start, d_n = _vector(buf, data_pos)
            return json.loads(buf[d_start:d_start + d_n].decode("utf-8"))
    except (struct.error, IndexError, ValueError, UnicodeDecodeError):
        return None
    return None


# ---- ONNX: protobuf wire format -------------------------------------------------------------------------------
def _varint(buf: bytes, pos: int) -> tuple:
    out, shift = 0, 0
    while True:
        b = buf[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, pos
        shift += 7


def _fields(buf: bytes, start: int, end: int):
    """``(field number, wire type, value or (from, to) of a length-delimited field)`` of one message."""
    pos = start
    while pos < end:
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = None, pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = (pos, pos + n), pos + n
        elif wire == 5:
            value, pos = None, pos + 4
        else:
            raise ValueError(f"protobuf wire type {wire} is not handled")
        yield number, wire, value


def onnx_metadata(buf: bytes) -> Optional[dict]:
    """The :data:`KEY` entry of an ONNX model's ``metadata_props`` (ModelProto field 14: key 1, value 2)."""
    try:
        for number, wire, value in _fields(buf, 0, len(buf)):
            if number != 14 or wire != 2:
                continue
            entry = {n: buf[v[0]:v[1]].decode("utf-8") for n, w, v in _fields(buf, *value) if w == 2}
            if entry.get(1) == KEY:
                return json.loads(entry.get(2, "null"))
    except (IndexError, ValueError, UnicodeDecodeError):
        return None
    return None


def read_embedded(data: bytes, runtime: str) -> Optional[dict]:
    """The embedded essentials of an artifact's bytes (``runtime``: ``tflite`` or ``onnx``), or ``None``."""
    return tflite_metadata(data) if runtime == "tflite" else onnx_metadata(data) if runtime == "onnx" else None


def expected_from_manifest(manifest) -> dict:
    """What the embedded object should say, from a :class:`~deconv_edge_core.manifest.Manifest`."""
    return {"schema_version": manifest.schema_version, "format": manifest.format, "task": manifest.task,
            "scale": manifest.scale, "color_space": manifest.color_space, "value_range": list(manifest.value_range),
            "upsampler": manifest.upsampler, "source_model_sha256": (manifest.source_model or {}).get("sha256")}


def embedded_mismatches(embedded: dict, manifest) -> list:
    """``["format: file 'onnx-fp32', manifest 'onnx-int8'", ...]`` for every checked field on which the two
    disagree."""
    want = expected_from_manifest(manifest)
    out = []
    for key in CHECKED:
        if key not in embedded:
            continue
        got = embedded[key]
        if key == "value_range":
            got = [float(v) for v in got]
            ok = got == [float(v) for v in want[key]]
        else:
            ok = got == want[key]
        if ok:
            continue
        if key == "scale":  # the one a user edits by hand: worded as the Enhancer words a wrong output size
            out.append(f"scale: the file is x{got}, not x{want[key]} as its manifest says")
        else:
            out.append(f"{key}: file {got!r}, manifest {want[key]!r}")
    return out
