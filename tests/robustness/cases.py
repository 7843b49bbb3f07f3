"""The hostile cases: what a careless or malicious user, or a broken file from outside, gives each command.

Each :class:`Case` builds its own inputs in a fresh folder and returns the command line. Every case must end
with a non-zero exit and one ``error:`` line (see ``test_hostile_cli.py`` for the full contract). Files
named ``keep*`` are good files already there: a failed run must leave them exactly as they were.

Over 400 lines on purpose: this is a table, one short entry per case, read top to bottom per command; split
into files it would only be harder to see which hostile inputs a command is covered against.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from . import hostile as H

SECRET = "s3cretpw"


@dataclass(frozen=True)
class Shared:
    """Inputs built once per session (large ones) and an unwritable folder (``None`` where none can be made)."""

    folder: Path
    huge_png: Path
    big_manifest_bundle: Path
    good_bundle: Path
    readonly: Optional[Path]


@dataclass(frozen=True)
class Case:
    """One hostile run.

    Attributes:
        id: test id (``command-what``).
        command: the subcommand.
        build: ``build(folder, shared) -> argv`` (after ``deconv-edge``); makes the inputs in ``folder``.
        expect: a regular expression the ``error:`` line must match (the message says what went wrong).
        forbidden: strings that must appear nowhere in the output (secrets).
        needs_readonly: skipped where no unwritable folder can be made.
        timeout_s: the run must end within this (a hang fails the case).
    """

    id: str
    command: str
    build: Callable[[Path, Shared], list]
    expect: str = ""
    forbidden: tuple = ()
    needs_readonly: bool = False
    timeout_s: float = 90.0


CASES: list[Case] = []


def case(id: str, command: str, expect: str = "", **kw):
    def deco(fn):
        CASES.append(Case(id=id, command=command, build=fn, expect=expect, **kw))
        return fn
    return deco


def add(id: str, command: str, build, expect: str = "", **kw) -> None:
    CASES.append(Case(id=id, command=command, build=build, expect=expect, **kw))


def w(path: Path, data) -> Path:
    """Write ``data`` (bytes or text) to ``path``; return the path."""
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def keep_picture(d: Path, name: str = "keep.png") -> Path:
    return H.good_picture(d / name, seed=7)


def keep_video(d: Path, name: str = "keep.mp4") -> Path:
    return H.good_video(d / name)


DEMO = "demo://?size=32x24&fps=30"

# ---- pictures: through enhance (one input, and beside a good one) and through camera's dir:// source -----------
PICTURES = {
    "empty-png": (lambda d: w(d / "bad.png", b""), r"cannot read picture|damaged|empty"),
    "random-bytes-png": (lambda d: w(d / "bad.png", bytes(range(256)) * 8),
                         r"cannot read picture"),
    "text-as-jpg": (lambda d: w(d / "bad.jpg", "hello, not a picture\n"),
                    r"cannot read picture|truncated"),
    "truncated-png": (lambda d: H.truncated(d / "bad.png", H.good_picture(d / "src.png", 64, 48)), r"truncated"),
    "truncated-jpeg": (lambda d: H.truncated(d / "bad.jpg", H.good_jpeg(d / "src.jpg"), 0.6), r"truncated"),
    "truncated-jpeg-tiny": (lambda d: H.truncated(d / "bad.jpg", H.good_jpeg(d / "src.jpg"), 0.05),
                            r"truncated|cannot read"),
    "png-header-bomb-30000": (lambda d: H.png_header_bomb(d / "bad.png"), r"30000x30000.*--max-pixels"),
    "png-header-bomb-wide": (lambda d: H.png_header_bomb(d / "bad.png", w=2_000_000_000, h=1), r"over the limit"),
    "jpeg-header-bomb": (lambda d: H.jpeg_header_bomb(d / "bad.jpg"), r"65000x65000.*--max-pixels"),
    "bmp-header-bomb": (lambda d: H.bmp_header_bomb(d / "bad.bmp"), r"50000x50000"),
    "tiff-header-bomb": (lambda d: H.tiff_header_bomb(d / "bad.tif"), r"60000x60000"),
    "webp-header-bomb": (lambda d: H.webp_header_bomb(d / "bad.webp"), r"16000x16000"),
    "symlink-loop-png": (lambda d: (d / "bad.png").symlink_to("bad.png") or d / "bad.png",
                         r"does not exist|cannot|symbolic"),
}
for _name, (_make, _expect) in PICTURES.items():
    def _enhance_one(d, s, make=_make):
        keep_picture(d, "keep.png")
        return ["enhance", str(make(d).name), "-o", "keep.png", "--quiet"]

    def _enhance_two(d, s, make=_make):
        H.good_picture(d / "a_good.png")
        bad = make(d)
        return ["enhance", "a_good.png", bad.name, "-o", "outdir", "--quiet"]

    def _camera_dir(d, s, make=_make):
        (d / "pics").mkdir()
        bad = make(d)
        (d / "pics" / bad.name).symlink_to(bad.resolve()) if not bad.is_symlink() else \
            (d / "pics" / bad.name).symlink_to("../" + bad.name)
        keep_video(d)
        return ["camera", "--source", f"dir://{d / 'pics'}", "--sink", "keep.mp4"]

    add(f"enhance-{_name}", "enhance", _enhance_one, _expect)
    add(f"enhance-skips-{_name}", "enhance", _enhance_two, r"1 of 2 input\(s\) skipped|does not exist")
    add(f"camera-dir-{_name}", "camera", _camera_dir, r"delivered no frame")


@case("enhance-valid-png-10000x10000", "enhance", r"10000x10000 \(100\.0 MP\).*--max-pixels")
def _(d, s):
    keep_picture(d)
    return ["enhance", str(s.huge_png), "-o", "keep.png"]


@case("camera-dir-valid-png-10000x10000", "camera", r"delivered no frame \(1 unreadable")
def _(d, s):
    (d / "pics").mkdir()
    (d / "pics" / "huge.png").symlink_to(s.huge_png)
    return ["camera", "--source", f"dir://{d / 'pics'}", "--sink", "null"]


@case("enhance-max-pixels-below-input", "enhance", r"40x30 .*over the limit of 0\.0001 MP")
def _(d, s):
    H.good_picture(d / "in.png")
    return ["enhance", "in.png", "-o", "out.png", "--max-pixels", "100"]


# ---- model files ----------------------------------------------------------------------------------------------
MODELS = {
    "missing": (lambda d: d / "nope.tflite", r"does not exist"),
    "no-manifest": (lambda d: w(d / "m.tflite", H.BASE_MODEL.read_bytes()),
                    r"no manifest"),
    "manifest-without-artifact": (lambda d: (H.copy_model(d), (d / "m.tflite").unlink(), d / "m.tflite")[2],
                                  r"does not exist"),
    "tampered-artifact": (lambda d: H.copy_model(d, artifact_bytes=H.BASE_MODEL.read_bytes()[:-64] + b"\0" * 64,
                                                 fix_hash=False), r"does not match its manifest"),
    "garbage-artifact-hash-ok": (lambda d: H.copy_model(d, artifact_bytes=b"not a flatbuffer" * 100),
                                 r"cannot load .* as a TFLite model"),
    "empty-artifact-hash-ok": (lambda d: H.copy_model(d, artifact_bytes=b""), r"cannot load"),
    "truncated-tflite-hash-ok": (lambda d: H.copy_model(d, artifact_bytes=H.BASE_MODEL.read_bytes()[:3000]),
                                 r"cannot load"),
    "garbage-onnx-hash-ok": (lambda d: H.copy_model(d, "m.onnx", artifact_bytes=b"\x08\x07garbage" * 50,
                                                    edit=lambda m: m.update(runtime="onnx", format="onnx-fp32")),
                             r"cannot load|does not match"),
    "folder-as-model": (lambda d: (d / "m.tflite").mkdir() or d / "m.tflite", r"no manifest|not|folder"),
    "picture-as-model": (lambda d: H.good_picture(d / "m.png"), r"no manifest"),
}
for _name, (_make, _expect) in MODELS.items():
    def _enh(d, s, make=_make):
        H.good_picture(d / "in.png")
        keep_picture(d)
        return ["enhance", "in.png", "-o", "keep.png", "--model", str(make(d)), "--quiet"]

    def _cam(d, s, make=_make):
        keep_video(d)
        return ["camera", "--source", DEMO, "--sink", "keep.mp4", "--model", str(make(d)), "--max-frames", "2"]

    def _bench(d, s, make=_make):
        return ["bench", str(make(d)), "--runs", "1", "--warmup", "0", "--threads", "1", "--quiet"]

    add(f"enhance-model-{_name}", "enhance", _enh, _expect)
    add(f"camera-model-{_name}", "camera", _cam, _expect)
    add(f"bench-model-{_name}", "bench", _bench, "")


# ---- manifests: untrusted JSON, checked as a schema and against the model's real tensors ---------------------
def _set(path: str, value):
    def edit(m):
        keys = path.split(".")
        obj = m
        for k in keys[:-1]:
            obj = obj[k]
        obj[keys[-1]] = value
    return edit


def _del(path: str):
    def edit(m):
        keys = path.split(".")
        obj = m
        for k in keys[:-1]:
            obj = obj[k]
        del obj[keys[-1]]
    return edit


MANIFEST_EDITS = {
    "artifact-dotdot": (_set("artifact.file", "../x.tflite"), r"plain file name"),
    "artifact-absolute": (_set("artifact.file", "/etc/passwd"), r"plain file name"),
    "artifact-empty-name": (_set("artifact.file", ""), r"artifact\.file missing"),
    "schema-99": (_set("schema_version", 99), r"schema_version 99"),
    "no-input": (_del("input"), r"malformed"),
    "scale-7": (_set("scale", 7), r"scale 7"),
    "scale-3-for-x2-model": (_set("scale", 3), r"not x3 as its manifest says"),
    "scale-text": (_set("scale", "two"), r"malformed"),
    "input-dtype-float32": (_set("input.dtype", "float32"), r"float32 tensor cannot have quantization"),
    "input-dtype-complex": (_set("input.dtype", "complex128"), r"dtype 'complex128'"),
    "output-dtype-int8": (_set("output.dtype", "int8"), r"output dtype is uint8|zero_point"),
    "shape-3d": (_set("input.shape", [1, None, None]), r"4 dimensions"),
    "shape-absurd": (_set("input.shape", [1, 100000, 100000, 1]), r"height and width must be"),
    "shape-3-channels": (_set("input.shape", [1, None, None, 3]), r"one \(luma\) channel"),
    "shape-batch-0": (_set("input.shape", [0, None, None, 1]), r"batch must be"),
    "shape-text": (_set("input.shape", ["a", None, None, 1]), r"malformed"),
    "quant-scale-0": (_set("input.quantization.scale", 0.0), r"quantization\.scale 0"),
    "quant-scale-negative": (_set("input.quantization.scale", -0.5), r"positive finite"),
    "quant-scale-mismatch": (_set("output.quantization.scale", 0.5), r"quantization is scale"),
    "quant-zero-point-300": (_set("input.quantization.zero_point", 300), r"zero_point 300"),
    "quant-missing-uint8": (_set("input.quantization", None), r"needs quantization"),
    "value-range-empty": (_set("value_range", [0, 0]), r"value_range \[0, 0\] is empty"),
    "value-range-reversed": (_set("value_range", [1, 0]), r"is empty"),
    "value-range-text": (_set("value_range", ["a", 1]), r"two finite numbers"),
    "layout-unknown": (_set("input.layout", "HWCN"), r"layout 'HWCN'"),
    "runtime-unknown": (_set("runtime", "caffe"), r"runtime 'caffe'"),
}
MANIFEST_TEXTS = {
    "not-json": ("{this is not json", r"not readable JSON"),
    "json-array": ("[1, 2, 3]", r"not a JSON object"),
    "nan-scale": (None, r"positive finite"),  # filled below: NaN is valid to Python's json module
    "deeply-nested": ("[" * 100000 + "]" * 100000, r"not readable JSON|recursion"),
    "2-mib": (None, r"real manifests are a few KB"),
}


def _manifest_text(name: str) -> str:
    base = json.loads(H.BASE_MODEL.with_name(H.BASE_MODEL.name + ".json").read_text())
    base["artifact"]["file"] = "m.tflite"
    if name == "nan-scale":
        return json.dumps(base).replace('"scale": 0.003921568859368563', '"scale": NaN', 1)
    if name == "2-mib":
        base["padding"] = " " * (2 << 20)
        return json.dumps(base)
    return MANIFEST_TEXTS[name][0]


BENCH_MANIFESTS = ("artifact-dotdot", "scale-3-for-x2-model", "input-dtype-float32", "output-dtype-int8",
                   "shape-absurd", "quant-scale-0", "quant-scale-mismatch", "value-range-empty", "not-json",
                   "2-mib")


def _tampered(d: Path, name: str) -> Path:
    if name in MANIFEST_EDITS:
        return H.copy_model(d, edit=MANIFEST_EDITS[name][0])
    return H.write_manifest_text(H.copy_model(d), _manifest_text(name))


for _name, _expect in [(k, v[1]) for k, v in MANIFEST_EDITS.items()] + [(k, v[1]) for k, v in MANIFEST_TEXTS.items()]:
    def _enh(d, s, name=_name):
        H.good_picture(d / "in.png")
        keep_picture(d)
        return ["enhance", "in.png", "-o", "keep.png", "--model", str(_tampered(d, name)), "--quiet"]

    def _bench(d, s, name=_name):
        return ["bench", str(_tampered(d, name)), "--runs", "1", "--warmup", "0", "--threads", "1", "--quiet"]

    def _verify(d, s, name=_name):
        return ["verify", str(_tampered(d, name))]

    add(f"enhance-manifest-{_name}", "enhance", _enh, _expect)
    if _name in BENCH_MANIFESTS:  # bench starts worker processes: a few stand for the same checks as enhance
        add(f"bench-manifest-{_name}", "bench", _bench, "")
    if _name not in ("scale-3-for-x2-model", "input-dtype-float32", "output-dtype-int8", "quant-scale-mismatch"):
        # verify checks the schema and the hash; comparing with the tensors needs the runtime (enhance/bench do)
        add(f"verify-manifest-{_name}", "verify", _verify, "")


# ---- source URIs ----------------------------------------------------------------------------------------------
SOURCES = {
    "unknown-scheme": ("foo://bar", r"unknown source scheme"),
    "empty": ("", r"empty --source"),
    "demo-size-100000": ("demo://?size=100000x100000", r"100000x100000.*over the limit"),
    "demo-size-0": ("demo://?size=0x0", r"must look like 640x480"),
    "demo-size-text": ("demo://?size=big", r"must look like"),
    "demo-size-digits": ("demo://?size=" + "9" * 5000 + "x1", r"must look like"),
    "demo-fps-nan": ("demo://?fps=nan", r"finite"),
    "demo-fps-inf": ("demo://?fps=1e309", r"finite"),
    "demo-fps-negative": ("demo://?fps=-5", r"more than 0"),
    "demo-fps-huge": ("demo://?fps=1e9", r"at most 1000"),
    "dir-missing": ("dir:///nonexistent/folder", r"does not exist"),
    "file-missing": ("file:///nonexistent/video.mp4", r"does not exist"),
    "plain-missing": ("nonexistent.mp4", r"does not exist"),
    "v4l2-missing": ("/dev/video99", r""),
    "rtsp-refused-with-password": (f"rtsp://admin:{SECRET}@127.0.0.1:9/stream", r"rtsp://\*\*\*@127\.0\.0\.1"),
}
for _name, (_uri, _expect) in SOURCES.items():
    def _cam(d, s, uri=_uri):
        keep_video(d)
        return ["camera", "--source", uri, "--sink", "keep.mp4", "--max-frames", "2", "--timeout", "1",
                "--retries", "0"]

    add(f"camera-source-{_name}", "camera", _cam, _expect, forbidden=(SECRET,))


@case("camera-source-empty-dir", "camera", r"holds no picture")
def _(d, s):
    (d / "pics").mkdir()
    return ["camera", "--source", f"dir://{d / 'pics'}", "--sink", "null"]


@case("camera-source-garbage-video", "camera", r"cannot decode")
def _(d, s):
    (d / "v.mp4").write_bytes(b"\0\0\0\x18ftypmp42" + bytes(range(256)) * 20)
    return ["camera", "--source", "v.mp4", "--sink", "null"]


@case("camera-source-truncated-mp4", "camera", r"cannot decode")
def _(d, s):
    H.truncated(d / "v.mp4", H.good_video(d / "src.mp4"), 0.5)
    return ["camera", "--source", "v.mp4", "--sink", "null"]


@case("enhance-truncated-mp4", "enhance", r"cannot decode|no frame")
def _(d, s):
    H.truncated(d / "v.mp4", H.good_video(d / "src.mp4"), 0.5)
    keep_video(d, "keep.mp4")
    return ["enhance", "v.mp4", "-o", "keep.mp4", "--quiet"]


# ---- sinks and other outputs ----------------------------------------------------------------------------------
LONG = "x" * 5000


def _sink_case(name: str, sink: str, expect: str, extra=(), prep=None, **kw):
    def build(d, s):
        keep_video(d)
        if prep:
            prep(d)
        return ["camera", "--source", DEMO, "--sink", sink, "--max-frames", "2", *extra]
    add(f"camera-sink-{name}", "camera", build, expect, **kw)


_sink_case("existing-folder", "folder.mp4", r"is a folder", prep=lambda d: (d / "folder.mp4").mkdir())
_sink_case("dev-null", "/dev/null", r"not a regular file")
_sink_case("unknown-scheme", "foo://bar", r"unknown sink scheme")
_sink_case("unknown-suffix", "out.xyz", r"cannot write video|use one of")
_sink_case("name-too-long", LONG + ".mp4", r"too long")
_sink_case("folder-too-long", LONG + "/out.mp4", r"too long")
_sink_case("parent-is-a-file", "keep.mp4/out.mp4", r"is a file")
_sink_case("http-port-99999", "http://127.0.0.1:99999", r"bad port")
_sink_case("http-port-text", "http://127.0.0.1:abc", r"bad port")
_sink_case("http-bad-host", "http://999.999.999.999:8080", r"cannot serve")
_sink_case("http-quality-500", "http://127.0.0.1:0?quality=500", r"quality must be")
_sink_case("http-max-clients-0", "http://127.0.0.1:0?max_clients=0", r"max_clients")
_sink_case("http-client-timeout-nan", "http://127.0.0.1:0?client_timeout=nan", r"client_timeout")
_sink_case("segment-with-null", "null", r"--segment records files", extra=("--segment", "5"))
_sink_case("stats-json-folder", "out.mp4", r"--stats-json .* is a folder", extra=("--stats-json", "sj"),
           prep=lambda d: (d / "sj").mkdir())
_sink_case("stats-json-dev-null", "out.mp4", r"not a regular file", extra=("--stats-json", "/dev/null"))
_sink_case("stats-json-same-as-sink", "keep.mp4", r"same file", extra=("--stats-json", "keep.mp4"))
_sink_case("stats-json-too-long", "out.mp4", r"too long", extra=("--stats-json", LONG + ".json"))
_sink_case("readonly-folder", "RO/out.mp4", r"cannot write", needs_readonly=True)
_sink_case("stats-json-readonly", "out.mp4", r"cannot write", extra=("--stats-json", "RO/s.json"),
           needs_readonly=True)


@case("camera-overwrites-its-source", "camera", r"overwrite its own input")
def _(d, s):
    keep_video(d)
    return ["camera", "--source", "keep.mp4", "--sink", "keep.mp4"]


@case("camera-overwrites-its-source-file-uri", "camera", r"overwrite its own input")
def _(d, s):
    keep_video(d)
    return ["camera", "--source", f"file://{d / 'keep.mp4'}", "--sink", "./keep.mp4"]


@case("camera-stats-json-overwrites-source", "camera", r"overwrite its own input")
def _(d, s):
    keep_video(d)
    return ["camera", "--source", "keep.mp4", "--sink", "null", "--stats-json", "keep.mp4"]


@case("camera-dir-source-into-itself", "camera", r"")
def _(d, s):
    (d / "pics").mkdir()
    keep_picture(d / "pics", "keep.png")
    return ["camera", "--source", f"dir://{d / 'pics'}", "--sink", str(d / "pics")]


def _enhance_out(name: str, out: str, expect: str, prep=None, inputs=("in.png",), **kw):
    def build(d, s):
        H.good_picture(d / "in.png")
        keep_picture(d)
        if prep:
            prep(d)
        return ["enhance", *inputs, "-o", out, "--quiet"]
    add(f"enhance-out-{name}", "enhance", build, expect, **kw)


_enhance_out("dev-null", "/dev/null", r"not a folder|not a regular file")
_enhance_out("name-too-long", LONG + ".png", r"too long")
_enhance_out("folder-too-long", LONG + "/", r"too long")
_enhance_out("parent-is-a-file", "keep.png/x.png", r"is a file")
_enhance_out("same-as-input", "in.png", r"overwrite its input")
_enhance_out("same-as-input-dotslash", "./in.png", r"overwrite its input")
_enhance_out("symlink-to-input", "link.png", r"overwrite its input", prep=lambda d: (d / "link.png").symlink_to("in.png"))
_enhance_out("kind-mismatch", "out.mp4", r"is a picture but the output")
_enhance_out("unknown-suffix", "out.xyz", r"neither a picture")
_enhance_out("folder-named-like-file", "keep.png", r"is a file, not a folder", inputs=("in.png", "in2.png"),
             prep=lambda d: H.good_picture(d / "in2.png"))
_enhance_out("readonly-folder", "RO/out.png", r"cannot write", needs_readonly=True)
_enhance_out("readonly-folder-many", "RO/", r"cannot write", needs_readonly=True, inputs=("in.png", "in2.png"),
             prep=lambda d: H.good_picture(d / "in2.png"))


@case("enhance-input-missing", "enhance", r"does not exist")
def _(d, s):
    return ["enhance", "nope.png", "-o", "out.png"]


@case("enhance-input-empty-folder", "enhance", r"no picture or video")
def _(d, s):
    (d / "empty").mkdir()
    return ["enhance", "empty", "-o", "out"]


@case("enhance-video-to-picture", "enhance", r"is a video but the output")
def _(d, s):
    H.good_video(d / "v.mp4")
    keep_picture(d)
    return ["enhance", "v.mp4", "-o", "keep.png"]


# ---- numeric arguments ----------------------------------------------------------------------------------------
CAMERA_NUMBERS = [
    ("duration-nan", ["--duration", "nan"], r"finite"), ("duration-inf", ["--duration", "inf"], r"finite"),
    ("duration-negative", ["--duration", "-1"], r"positive"), ("duration-zero", ["--duration", "0"], r"positive"),
    ("duration-text", ["--duration", "abc"], r"not a number"),
    ("timeout-nan", ["--timeout", "nan"], r"finite"), ("timeout-inf", ["--timeout", "inf"], r"finite"),
    ("timeout-zero", ["--timeout", "0"], r"positive"),
    ("max-frames-zero", ["--max-frames", "0"], r"positive"), ("max-frames-negative", ["--max-frames", "-3"], r"positive"),
    ("max-frames-float", ["--max-frames", "1.5"], r"not an integer"),
    ("max-frames-5000-digits", ["--max-frames", "9" * 5000], r"not an integer"),
    ("retries-negative", ["--retries", "-1"], r"0 or more"),
    ("threads-100000", ["--threads", "100000"], r"at most 256"), ("threads-zero", ["--threads", "0"], r"positive"),
    ("tile-99999", ["--tile", "99999x99999"], r"too large"), ("tile-zero", ["--tile", "0x5"], r"HEIGHTxWIDTH"),
    ("tile-text", ["--tile", "big"], r"HEIGHTxWIDTH"),
    ("halo-negative", ["--halo", "-1"], r"0 or more"),
    ("halo-huge", ["--halo", "1000000000", "--tile", "64x64"], r"too small for a halo"),
    ("max-pixels-zero", ["--max-pixels", "0"], r"positive"),
    ("segment-nan", ["--segment", "nan"], r"finite"), ("segment-zero", ["--segment", "0"], r"positive"),
]
for _name, _args, _expect in CAMERA_NUMBERS:
    def _cam(d, s, args=_args):
        keep_video(d)
        return ["camera", "--source", DEMO, "--sink", "keep.mp4", "--max-frames", "2", *args]
    add(f"camera-arg-{_name}", "camera", _cam, _expect)

ENHANCE_NUMBERS = [
    ("threads-100000", ["--threads", "100000"], r"at most 256"), ("tile-99999", ["--tile", "99999x99999"], r"too large"),
    ("halo-huge", ["--halo", "100000", "--tile", "64x64"], r"too small for a halo"),
    ("max-pixels-text", ["--max-pixels", "lots"], r"integer"),
    ("tile-smaller-than-halo", ["--tile", "8x8", "--halo", "12"], r"too small for a halo"),
]
for _name, _args, _expect in ENHANCE_NUMBERS:
    def _enh(d, s, args=_args):
        H.good_picture(d / "in.png")
        keep_picture(d)
        return ["enhance", "in.png", "-o", "keep.png", "--quiet", *args]
    add(f"enhance-arg-{_name}", "enhance", _enh, _expect)

BENCH_NUMBERS = [
    ("threads-100000", ["--threads", "100000"], r"1\.\.256"), ("threads-zero", ["--threads", "0"], r"1\.\.256|positive"),
    ("threads-text", ["--threads", "a,b"], r"positive integer"), ("runs-zero", ["--runs", "0"], r"--runs"),
    ("warmup-negative", ["--warmup", "-1"], r"--warmup"), ("input-size-99999", ["--input-size", "99999x99999"], r"each side must be"),
    ("input-size-zero", ["--input-size", "0x0"], r""),
    ("json-folder", ["--json", "jf"], r"is a folder"), ("json-dev-null", ["--json", "/dev/null"], r"not a regular file"),
    ("json-too-long", ["--json", LONG + ".json"], r"too long"), ("csv-parent-file", ["--csv", "x.txt/a.csv"], r"is a file"),
    ("md-readonly", ["--md", "RO/r.md"], r"cannot write"),
]
for _name, _args, _expect in BENCH_NUMBERS:
    def _bench(d, s, args=_args):
        (d / "jf").mkdir()
        (d / "x.txt").write_text("keep\n")
        return ["bench", str(H.BASE_MODEL), "--runs", "1", "--warmup", "0", "--quiet", *args]
    add(f"bench-arg-{_name}", "bench", _bench, _expect, needs_readonly="RO/" in " ".join(_args))

# ---- bundles: verify, bundle, deploy ---------------------------------------------------------------------------
VERIFY = {
    "truncated-20-bytes": (lambda d, s: H.truncated(d / "t.tar.gz", s.good_bundle, 1.0 - 20 / s.good_bundle.stat().st_size),
                           r"problem"),
    "truncated-half": (lambda d, s: H.truncated(d / "t.tar.gz", s.good_bundle, 0.5), r"problem"),
    "garbage": (lambda d, s: w(d / "t.tar.gz", bytes(range(256)) * 40), r"problem"),
    "empty-file": (lambda d, s: w(d / "t.tar.gz", b""), r"problem"),
    "gzip-not-tar": (lambda d, s: w(d / "t.tar.gz", __import__("gzip").compress(b"hello" * 100)), r"problem"),
    "member-dotdot": (lambda d, s: H.tar_with(d / "t.tar.gz", [("../evil", "x", "file")]), r"problem"),
    "member-absolute": (lambda d, s: H.tar_with(d / "t.tar.gz", [("/etc/evil", "x", "file")]), r"problem"),
    "member-symlink": (lambda d, s: H.tar_with(d / "t.tar.gz", [("models/x", "/etc/passwd", "symlink")]), r"problem"),
    "no-sums": (lambda d, s: H.rebundle(d / "t.tar.gz", s.good_bundle, lambda f: f.pop("SHA256SUMS")), r"problem"),
    "tampered-artifact": (lambda d, s: H.rebundle(d / "t.tar.gz", s.good_bundle, lambda f: f.update(
        {k: v[:-1] + b"\x01" for k, v in f.items() if k.endswith(".tflite")})), r"problem"),
    "unlisted-file": (lambda d, s: H.rebundle(d / "t.tar.gz", s.good_bundle, lambda f: f.update(extra=b"x")),
                      r"problem"),
    "manifest-dotdot": (lambda d, s: H.rebundle(d / "t.tar.gz", s.good_bundle, _bundle_manifest_dotdot), r"problem"),
    "64-mib-manifest": (lambda d, s: s.big_manifest_bundle, r"problem"),
    "missing": (lambda d, s: d / "nope.tar.gz", r"does not exist"),
}


def _bundle_manifest_dotdot(files: dict) -> None:
    import hashlib

    for name in list(files):
        if name.endswith(".json") and name.startswith("models/"):
            m = json.loads(files[name])
            m["artifact"]["file"] = "../bundle.json"
            files[name] = json.dumps(m).encode()
    files["SHA256SUMS"] = "".join(f"{hashlib.sha256(v).hexdigest()}  {k}\n" for k, v in files.items()
                                  if k != "SHA256SUMS").encode()


for _name, (_make, _expect) in VERIFY.items():
    add(f"verify-bundle-{_name}", "verify", lambda d, s, make=_make: ["verify", str(make(d, s))], _expect)
    if _name in ("truncated-20-bytes", "tampered-artifact", "member-dotdot", "missing", "garbage"):
        add(f"deploy-bundle-{_name}", "deploy",
            lambda d, s, make=_make: ["deploy", str(make(d, s)), "user@127.0.0.1:9", "--connect-timeout", "2"], "")


@case("verify-folder-with-big-manifest", "verify", r"problem")
def _(d, s):
    (d / "b" / "models").mkdir(parents=True)
    (d / "b" / "models" / "x.tflite.json").write_bytes(b" " * (2 << 20))
    (d / "b" / "SHA256SUMS").write_text("")
    return ["verify", str(d / "b")]


BUNDLE = [
    ("out-not-tgz", lambda d: [str(H.BASE_MODEL), "-o", "b.zip"], r"must end with \.tar\.gz"),
    ("out-folder", lambda d: (d / "b.tar.gz").mkdir() or [str(H.BASE_MODEL), "-o", "b.tar.gz"], r"is a folder"),
    ("out-too-long", lambda d: [str(H.BASE_MODEL), "-o", LONG + ".tar.gz"], r"too long"),
    ("out-readonly", lambda d: [str(H.BASE_MODEL), "-o", "RO/b.tar.gz"], r"cannot write"),
    ("out-dev-null", lambda d: [str(H.BASE_MODEL), "-o", "/dev/null"], r"must end with"),
    ("artifact-missing", lambda d: ["nope.tflite", "-o", "b.tar.gz"], r"does not exist"),
    ("artifact-tampered", lambda d: [str(H.copy_model(d, artifact_bytes=b"x" * 10, fix_hash=False)), "-o", "b.tar.gz"],
     r"does not match"),
    ("manifest-dotdot", lambda d: [str(H.copy_model(d, edit=_set("artifact.file", "../m.tflite"))), "-o", "b.tar.gz"],
     r"plain file name"),
    ("empty-folder", lambda d: (d / "e").mkdir() or ["e", "-o", "b.tar.gz"], r"holds no artifact"),
]
for _name, _args, _expect in BUNDLE:
    add(f"bundle-{_name}", "bundle", lambda d, s, args=_args: ["bundle", *args(d)], _expect,
        needs_readonly=_name == "out-readonly")

DEPLOY = [
    ("host-option-injection", ["-oProxyCommand=touch /tmp/pwned"], r"host"),
    ("host-bad-port", ["user@host:99999"], r"bad port"),
    ("host-empty-user", ["@host"], r"bad user name|host"),
    ("connect-timeout-nan", ["user@127.0.0.1:9", "--connect-timeout", "nan"], r"connect-timeout"),
    ("jobs-zero", ["user@127.0.0.1:9", "--jobs", "0"], r"--jobs"),
    ("host-twice", ["u@h", "u@h"], r"given twice"),
]
for _name, _hosts, _expect in DEPLOY:
    add(f"deploy-{_name}", "deploy", lambda d, s, hosts=_hosts: ["deploy", str(s.good_bundle), *hosts], _expect)
