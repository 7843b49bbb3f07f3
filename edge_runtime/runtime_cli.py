"""``deconv-edge enhance``, ``camera`` and ``doctor``: the commands a device runs (no TensorFlow needed)."""

from __future__ import annotations

import argparse

from deconv_edge_core.argtypes import height_width as _tile
from deconv_edge_core.argtypes import non_negative_float as _non_negative_float
from deconv_edge_core.argtypes import non_negative_int as _non_negative_int
from deconv_edge_core.argtypes import positive_float as _positive_float
from deconv_edge_core.argtypes import positive_int as _positive_int
from deconv_edge_core.argtypes import thread_count as _thread_count
from deconv_edge_core.commands import command
from deconv_edge_core.manifest import TASK_SCALES

from .inference.chroma import CHROMA_MODES
from .inference.config import RuntimeConfig

#: ``--task`` choices: the manifest's task names.
TASKS = tuple(TASK_SCALES)
#: The shipped model each task runs without ``--model`` (aliases of :mod:`edge_runtime.inference.catalog`).
TASK_DEFAULT_MODEL = {"super-resolution": None, "denoise": "denoise"}


def _model_for(args):
    """``--model``, else the shipped model of ``--task``."""
    if args.model is not None or args.task is None:
        return args.model
    return TASK_DEFAULT_MODEL[args.task]


def _model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="NAME|ARTIFACT",
                   help="a shipped model by name (x2, x3, x4, fast, fsrcnn_x3, fsrcnn_x3_int8: 'deconv-edge models' "
                        "lists them) or an artifact (.tflite/.onnx with its .json manifest); default: x2")
    g.add_argument("--task", choices=TASKS, default=None,
                   help="what to do when --model is not given: super-resolution (the x2 model) or denoise (the "
                        "shipped denoiser); with --model, the model must be of this task")
    g.add_argument("--strength", type=_non_negative_float, default=None, metavar="SIGMA",
                   help="denoisers with a noise-level input: the noise sigma to remove, in 8-bit steps "
                        "(default 25; in the browser preview a slider changes it live)")
    g.add_argument("--chroma", choices=CHROMA_MODES, default=None,
                   help="denoisers with a noise-level input, colour frames: denoise (default: luma, then the "
                        "chroma planes at half resolution, at 1.5x the luma-only time) or keep (luma only)")
    g.add_argument("--backend", default="auto", help="auto (from the manifest), litert, edgetpu or onnxruntime")
    g.add_argument("--threads", type=_thread_count, metavar="N", help="CPU threads for the interpreter (default: every core this process may use)")
    g.add_argument("--providers", default="", help="ONNX Runtime providers in order, comma-separated "
                   "(e.g. TensorrtExecutionProvider,CUDAExecutionProvider,CPUExecutionProvider)")
    g.add_argument("--trt-cache", metavar="DIR", help="TensorRT engine cache folder (default: beside the model)")
    g.add_argument("--tile", type=_tile, metavar="HxW",
                   help="run dynamic-shape models in low-resolution tiles of this size (fixed-shape models always tile)")
    g.add_argument("--halo", type=_non_negative_int, default=None,
                   help="low-resolution pixels of context around each tile (default 12; denoisers 24)")
    g.add_argument("--max-pixels", type=_positive_int, default=None, metavar="N",
                   help="refuse input pictures and frames larger than N pixels, read from the file's header "
                        "before decoding (default 40000000; memory is checked too)")


def _apply_limits(args) -> None:
    """``--max-pixels`` for this process; before OpenCV is imported, which reads its own limit once."""
    from .inference.limits import set_max_pixels

    set_max_pixels(args.max_pixels)


def _runtime_config(args) -> RuntimeConfig:
    providers = tuple(p.strip() for p in args.providers.split(",") if p.strip())
    return RuntimeConfig(backend=args.backend, threads=args.threads, providers=providers,
                         trt_cache_dir=args.trt_cache)


def _enhancer_kwargs(args) -> dict:
    return {"tile": args.tile, "halo": args.halo, "strength": args.strength, "task": args.task,
            "chroma": args.chroma}


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
        _apply_limits(args)
        from .inference.enhance import Enhancer
        from .video.media import enhance_files, expand_inputs, plan_outputs

        files = expand_inputs(args.inputs)
        plan_outputs(files, args.out, 2)  # output folder and names checked before the model loads
        enhancer = Enhancer(_model_for(args), _runtime_config(args), **_enhancer_kwargs(args))
        pairs = plan_outputs(files, args.out, enhancer.scale)
        desc = enhancer.describe()
        what = f"denoise, strength {desc['strength']:g}, chroma {desc['chroma']}" if desc.get("strength") is not None else \
            ("denoise" if enhancer.task == "denoise" else f"x{desc['scale']}")
        print(f"model {desc['model']} ({desc['format']}, {what}) on {desc['backend']}, "
              f"{desc['threads']} thread(s)", flush=True)
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
        p.add_argument("--compare", action="store_true", help="output bicubic | enhanced side by side (a denoiser: noisy | denoised)")
        p.add_argument("--stats-json", metavar="FILE", help="write the timing summary here at exit")
        p.add_argument("--timeout", type=_positive_float, default=5.0, metavar="S",
                       help="watchdog: no frame (or the same frame) for S seconds reconnects (default 5)")
        p.add_argument("--retries", type=_non_negative_int, default=5, metavar="N",
                       help="reconnect attempts before giving up (default 5)")
        p.add_argument("--segment", type=_positive_float, metavar="SECONDS",
                       help="record a new file every SECONDS (NAME_0000.mp4, NAME_0001.mp4, ...), each finished "
                            "as the next begins: a killed run loses at most its last segment")
        _model_arguments(p)

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        _apply_limits(args)
        from .video.camera import CameraConfig, run_camera

        kw = _enhancer_kwargs(args)
        cfg = CameraConfig(source=args.source, sink=args.sink, model=_model_for(args), runtime=_runtime_config(args),
                           max_frames=args.max_frames, duration_s=args.duration, overlay=args.overlay,
                           compare=args.compare, stats_json=args.stats_json, timeout_s=args.timeout,
                           retries=args.retries, tile=kw["tile"], halo=kw["halo"], segment_s=args.segment,
                           strength=args.strength, task=args.task, chroma=args.chroma)
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
