"""``deconv-edge enhance``, ``camera`` and ``doctor``: the commands a device runs (no TensorFlow needed)."""

from __future__ import annotations

import argparse

from .argtypes import height_width as _tile
from .argtypes import non_negative_int as _non_negative_int
from .argtypes import positive_float as _positive_float
from .argtypes import positive_int as _positive_int
from .commands import command
from .config import RuntimeConfig


def _model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="ARTIFACT", help="artifact (.tflite/.onnx with its .json manifest); "
                   "default: the model shipped in edge_runtime/models/")
    g.add_argument("--backend", default="auto", help="auto (from the manifest), litert, edgetpu or onnxruntime")
    g.add_argument("--threads", type=_positive_int, metavar="N", help="CPU threads for the interpreter (default: runtime's)")
    g.add_argument("--providers", default="", help="ONNX Runtime providers in order, comma-separated "
                   "(e.g. TensorrtExecutionProvider,CUDAExecutionProvider,CPUExecutionProvider)")
    g.add_argument("--trt-cache", metavar="DIR", help="TensorRT engine cache folder (default: beside the model)")
    g.add_argument("--tile", type=_tile, metavar="HxW",
                   help="run dynamic-shape models in low-resolution tiles of this size (fixed-shape models always tile)")
    g.add_argument("--halo", type=_non_negative_int, default=None,
                   help="low-resolution pixels of context around each tile (default 12)")


def _runtime_config(args) -> RuntimeConfig:
    providers = tuple(p.strip() for p in args.providers.split(",") if p.strip())
    return RuntimeConfig(backend=args.backend, threads=args.threads, providers=providers,
                         trt_cache_dir=args.trt_cache)


def _enhancer_kwargs(args) -> dict:
    from .enhance import DEFAULT_HALO

    return {"tile": args.tile, "halo": DEFAULT_HALO if args.halo is None else args.halo}


@command
class EnhanceCommand:
    name = "enhance"
    help = "upscale pictures and videos with a model (luma by the model, colour by bicubic)"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("inputs", nargs="+", metavar="INPUT", help="pictures, videos, or folders of them")
        p.add_argument("-o", "--out", required=True, metavar="OUT",
                       help="output file (one input) or folder (NAME_x2.EXT inside); videos lose their audio")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        _model_arguments(p)

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from .enhance import Enhancer
        from .media import enhance_files, expand_inputs, plan_outputs

        files = expand_inputs(args.inputs)
        enhancer = Enhancer(args.model, _runtime_config(args), **_enhancer_kwargs(args))
        pairs = plan_outputs(files, args.out, enhancer.scale)
        desc = enhancer.describe()
        print(f"model {desc['model']} ({desc['format']}, x{desc['scale']}) on {desc['backend']}", flush=True)
        enhance_files(enhancer, pairs, progress=not args.quiet)
        return 0


@command
class CameraCommand:
    name = "camera"
    help = "enhance a live camera (or stream, file, demo://) into a video, a browser preview or a window"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--source", required=True, metavar="URI",
                       help="0 | /dev/video0 | v4l2:///dev/video0 | csi://0 | picam://0 | video.mp4 | "
                            "rtsp://... | dir://FOLDER | demo://")
        p.add_argument("--sink", required=True, metavar="URI",
                       help="out.mp4 | http://127.0.0.1:8080 (browser preview) | window | null")
        p.add_argument("--max-frames", type=_positive_int, metavar="N", help="stop after N frames")
        p.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S seconds")
        p.add_argument("--overlay", action="store_true", help="draw FPS and latency on the output")
        p.add_argument("--compare", action="store_true", help="output bicubic | enhanced side by side")
        p.add_argument("--stats-json", metavar="FILE", help="write the timing summary here at exit")
        p.add_argument("--timeout", type=_positive_float, default=5.0, metavar="S",
                       help="watchdog: no frame (or the same frame) for S seconds reconnects (default 5)")
        p.add_argument("--retries", type=_non_negative_int, default=5, metavar="N",
                       help="reconnect attempts before giving up (default 5)")
        _model_arguments(p)

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from .camera import CameraConfig, run_camera

        kw = _enhancer_kwargs(args)
        cfg = CameraConfig(source=args.source, sink=args.sink, model=args.model, runtime=_runtime_config(args),
                           max_frames=args.max_frames, duration_s=args.duration, overlay=args.overlay,
                           compare=args.compare, stats_json=args.stats_json, timeout_s=args.timeout,
                           retries=args.retries, tile=kw["tile"], halo=kw["halo"])
        result = run_camera(cfg, say=lambda msg: print(msg, flush=True))
        return result.exit_code


@command
class DoctorCommand:
    name = "doctor"
    help = "what this machine can run: runtimes, Edge TPU, ONNX Runtime providers, cameras, display, CPU"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        pass

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from .doctor import checks, report

        items = checks()
        print(report(items))
        # Non-zero only when nothing can run a model at all.
        return 1 if any(c.problem and c.name == "litert" for c in items) else 0
