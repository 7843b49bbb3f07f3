"""``deconv-edge doctor``: what this machine can run, and advice for each problem found."""

from __future__ import annotations

import glob
import importlib
import importlib.util
import os
import platform
import sys
from dataclasses import dataclass
from typing import Optional

from .machine import board_model, cpu_governors, read_text, usable_cores


@dataclass(frozen=True)
class Check:
    """One line of the report: ``problem`` marks something to fix, ``advice`` says how."""

    name: str
    value: str
    problem: bool = False
    advice: str = ""


def _version(module: str) -> Optional[str]:
    try:
        mod = importlib.import_module(module)
    except Exception:  # noqa: BLE001 - a broken install raises anything; report it as missing
        return None
    return str(getattr(mod, "__version__", "?"))


def checks() -> list[Check]:
    """Everything ``doctor`` reports, in order."""
    import cv2
    import numpy as np

    from .video.sources._opencv import opencv_video_backends

    out = []
    board = board_model() or ""
    is_pi, is_jetson = "Raspberry Pi" in board, "Jetson" in board or os.path.exists("/etc/nv_tegra_release")
    out.append(Check("python", f"{platform.python_version()} ({sys.executable})"))
    out.append(Check("platform", f"{platform.system()} {platform.release()} {platform.machine()}"))
    out.append(Check("board", board or f"no device-tree model (a PC or VM: {platform.machine()})"))
    out.append(Check("cpu", f"{os.cpu_count()} cores, {usable_cores()} usable by this process "
                            "(the default --threads)"))
    govs = cpu_governors()
    if not govs:
        out.append(Check("cpu governor", "not exposed (no cpufreq: a VM or container)"))
    else:
        slow = [g for g in govs if g != "performance"]
        out.append(Check("cpu governor", ", ".join(govs), problem=bool(slow),
                         advice="for steady FPS and fair benchmarks: echo performance | sudo tee "
                                "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"
                                + ("; on a Jetson also: sudo nvpmodel -m 0 && sudo jetson_clocks" if is_jetson else "")))
    out.append(Check("numpy", np.__version__))
    vb = opencv_video_backends()
    out.append(Check("opencv", f"{cv2.__version__} (FFmpeg {'yes' if vb['FFMPEG'] else 'no'}, GStreamer "
                     f"{'yes' if vb['GStreamer'] else 'no'}, V4L2 {'yes' if vb['v4l/v4l2'] else 'no'}, GUI "
                     f"{'yes' if vb['GUI'] else 'no'})",
                     problem=is_jetson and not vb["GStreamer"],
                     advice="csi:// cameras need OpenCV with GStreamer: use JetPack's python3-opencv "
                            "(make the venv with --system-site-packages)"))

    # Inference runtimes.
    from .stacks import JETSON_ADVICE, cpu_kernels, runtime_wheels_hint

    litert, tflite_rt, ort = _version("ai_edge_litert"), _version("tflite_runtime"), _version("onnxruntime")
    out.append(Check("litert", f"ai_edge_litert {litert}" if litert else "not installed",
                     problem=not (litert or tflite_rt or ort), advice=runtime_wheels_hint()))
    if tflite_rt or not litert:
        out.append(Check("tflite_runtime", tflite_rt or "not installed (only needed on old Raspberry Pi OS: "
                                                        "'deconv-edge[legacy]')"))
    from .inference.backends.edgetpu import load_error

    tpu_error = load_error()
    # Coral USB: 1a6e:089a before its firmware is loaded, 18d1:9302 after.
    usb_ids = {(read_text(f"{d}/idVendor"), read_text(f"{d}/idProduct")) for d in glob.glob("/sys/bus/usb/devices/*")}
    usb_coral = bool(usb_ids & {("1a6e", "089a"), ("18d1", "9302")})
    pcie_coral = bool(glob.glob("/dev/apex_*"))
    coral = "Coral on USB" if usb_coral else "Coral on PCIe" if pcie_coral else "no Coral seen"
    out.append(Check("edge tpu", f"delegate loads ({coral})" if tpu_error is None else f"delegate does not load ({coral})",
                     problem=tpu_error is not None and (usb_coral or pcie_coral),
                     advice="install libedgetpu1-std (https://coral.ai/docs/accelerator/get-started) and "
                            "plug the Coral into a USB 3 port"))
    if ort:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
        gpu = any(p in providers for p in ("CUDAExecutionProvider", "TensorrtExecutionProvider"))
        out.append(Check("onnxruntime", f"{ort} (providers: {', '.join(providers)})", problem=is_jetson and not gpu,
                         advice="the PyPI onnxruntime is CPU only: install NVIDIA's onnxruntime-gpu wheel for "
                                "your JetPack (Jetson Zoo)"))
    else:
        out.append(Check("onnxruntime", "not installed (for .onnx artifacts: pip install 'deconv-edge[onnx]')"))

    # Cameras and display.
    cams = sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))
    names = [f"{c} ({read_text(f'/sys/class/video4linux/{os.path.basename(c)}/name') or '?'})" for c in cams]
    picam = importlib.util.find_spec("picamera2") is not None
    if is_pi:
        # libcamera camera modules show up as ISP/codec /dev/video* nodes that OpenCV cannot read.
        out.append(Check("cameras", "; ".join(names) or "none", problem=not picam,
                         advice="camera modules need picam://0 and picamera2: sudo apt install python3-picamera2 "
                                "(make the venv with --system-site-packages); USB cameras work as /dev/videoN"))
    else:
        out.append(Check("cameras", "; ".join(names) or "none (/dev/video* absent)", problem=False,
                         advice=""))
    if not cams:
        out.append(Check("demo source", "demo:// always works: deconv-edge camera --source demo:// --sink out.mp4"))
    from .video.sinks.window import display_available

    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    out.append(Check("display", display or ("none" if sys.platform.startswith("linux") else "assumed"),
                     problem=bool(display) and not vb["GUI"],
                     advice="this OpenCV has no GUI (headless wheel): pip install opencv-python for --sink window"))
    if not display_available():
        out.append(Check("preview", "no display: use --sink http://127.0.0.1:8080 and open it in a browser "
                                    "(over SSH: ssh -L 8080:127.0.0.1:8080 DEVICE)"))

    # The default model.
    from deconv_edge_core.errors import UserError

    from .inference.catalog import resolve

    try:
        model = resolve(None).path
        out.append(Check("default model", str(model)))
        # What really runs, read from the loaded interpreter (tflite-runtime 2.14 applies no XNNPACK to int8).
        text, slow = cpu_kernels(model)
        out.append(Check("kernels", text, problem=slow,
                         advice="this runtime applies no delegate to int8 models: pip install 'deconv-edge[edge]' "
                                "(LiteRT, XNNPACK) where the Python has its wheels (3.9+), or use an ONNX file"))
    except UserError as exc:
        out.append(Check("default model", "none", problem=True, advice=str(exc)))
    if is_jetson:
        out.append(Check("jetson", JETSON_ADVICE))
    out.extend(_model_choices())
    return out


def _model_choices() -> list[Check]:
    """Which file each shipped model name runs here, and why (measured by ``bench --pick`` or not)."""
    from deconv_edge_core.errors import UserError

    from .inference.catalog import choose_file, shipped_models
    from .inference.picks import cache_file

    items, measured = [], False
    for name, model in shipped_models().items():
        label = f"model {name}" + (f" ({', '.join(model.aliases)})" if model.aliases else "")
        try:
            chosen, how = choose_file(model)
        except UserError as exc:
            items.append(Check(label, "nothing runs here", problem=True, advice=str(exc)))
            continue
        measured = measured or how.startswith("fastest measured")
        items.append(Check(label, f"{chosen.name}: {how}"))
    if items and not measured:
        items.append(Check("model picks", f"not measured on this device (cache {cache_file()}): "
                                          "'deconv-edge bench --pick' measures each model's files once"))
    return items


def report(items: list[Check]) -> str:
    """The checks as aligned lines, advice indented under each problem."""
    width = max(len(c.name) for c in items)
    lines = []
    for c in items:
        mark = "!!" if c.problem else "  "
        lines.append(f"{mark} {c.name:<{width}}  {c.value}")
        if c.problem and c.advice:
            lines.append(f"   {'':<{width}}  -> {c.advice}")
    problems = sum(c.problem for c in items)
    lines.append(f"{problems} problem{'s' if problems != 1 else ''} found" if problems else "no problem found")
    return "\n".join(lines)
