"""The peer (OpenCV ``dnn_superres``) out of process, in its own venv (``opencv-contrib-python-headless<5``).

Standalone on purpose: it runs under ``.venv-peer/bin/python`` with only numpy and OpenCV 4.x contrib, so it
imports nothing from this repository (OpenCV 5 in the main venv cannot read these graphs).

Two modes:

``peer_worker.py SPEC_JSON``
    A case of ``deconv-edge bench``'s worker protocol (see ``edge_runtime/bench_worker.py``): the model call
    alone is ``net.forward`` on the luma blob, the frame path is ``DnnSuperResImpl.upsample`` on a BGR frame
    (its own YCrCb conversion, network on Y, bicubic chroma). Spec options: ``algo`` (fsrcnn, espcn),
    ``model`` (path of the .pb).

``peer_worker.py upsample --model PB --algo ALGO --scale S --in DIR --out DIR``
    For each ``*.npy`` (uint8 luma, H x W) in ``--in``, write the upscaled luma to ``--out`` under the same
    name. Luma goes in as a grey picture (Y in all three channels), as ``../shared/PROTOCOL.md`` measured
    the peer; channel 0 of the result is the upscaled Y.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _peak_rss_mb():
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _frame(h: int, w: int):
    """The same synthetic BGR frame as ``edge_runtime.bench_worker.synthetic_frame``."""
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[..., 0] = 128 + 90 * np.sin(xx / 7.0) * np.cos(yy / 11.0)
    img[..., 1] = 255 * xx / max(w - 1, 1)
    img[..., 2] = 255 * yy / max(h - 1, 1)
    img += rng.normal(0, 10, img.shape)
    img[h // 4:h // 2, w // 4:w // 2] = 240
    return np.clip(img, 0, 255).astype(np.uint8)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def serve(spec: dict, out, commands) -> int:
    """The bench worker protocol for one peer model."""

    def say(payload: dict) -> None:
        out.write(json.dumps(payload) + "\n")
        out.flush()

    try:
        import cv2
        import numpy as np

        threads = int(spec.get("threads") or 1)
        cv2.setNumThreads(threads)
        opts = dict(spec.get("options") or [])
        model, algo, scale = opts["model"], opts["algo"], int(spec.get("scale", 2))
        h, w = (int(v) for v in spec["input_hw"])
        frame = _frame(h, w)
        ycc = cv2.cvtColor(frame, cv2.COLOR_BGR2YCrCb)
        blob = (ycc[..., 0].astype(np.float32) / 255.0)[None, None]
        if not hasattr(cv2, "dnn_superres"):
            raise RuntimeError(f"OpenCV {cv2.__version__} here has no dnn_superres (needs opencv-contrib)")
        baseline = _peak_rss_mb()
        t0 = time.perf_counter()
        sr = cv2.dnn_superres.DnnSuperResImpl_create()
        sr.readModel(model)
        sr.setModel(algo, scale)
        load_ms = (time.perf_counter() - t0) * 1e3
        # A second copy of the graph for the model-call timing (DnnSuperResImpl does not expose its net).
        net = cv2.dnn.readNetFromTensorflow(model)
        t0 = time.perf_counter()
        net.setInput(blob)
        net.forward()
        first_model = (time.perf_counter() - t0) * 1e3
        t0 = time.perf_counter()
        sr.upsample(frame)
        first_frame = (time.perf_counter() - t0) * 1e3
        say({"ok": True, "event": "ready", "load_ms": load_ms, "first_inference_ms": first_model,
             "first_frame_ms": first_frame,
             "info": {"format": f"opencv-dnn {algo}", "scale": scale, "upsampler": None, "status": None,
                      "runtime": {"backend": "opencv-dnn", "runtime": f"opencv-contrib {cv2.__version__}",
                                  "threads": threads, "model": os.path.basename(model)},
                      "model_input_shape": [1, 1, h, w], "calls_per_frame": 1,
                      "artifact_size_bytes": os.path.getsize(model),
                      "notes": ["model call = net.forward on Y; frame = DnnSuperResImpl.upsample(BGR)"]}})
        for line in commands:
            if not line.strip():
                continue
            cmd = json.loads(line)
            if cmd.get("cmd") == "step":
                model_ms, frame_ms = [], []
                for _ in range(int(cmd.get("n", 1))):
                    t0 = time.perf_counter()
                    net.setInput(blob)
                    net.forward()
                    t1 = time.perf_counter()
                    sr.upsample(frame)
                    t2 = time.perf_counter()
                    model_ms.append((t1 - t0) * 1e3)
                    frame_ms.append((t2 - t1) * 1e3)
                say({"ok": True, "event": "samples", "model_ms": model_ms, "frame_ms": frame_ms, "stages_ms": {}})
            elif cmd.get("cmd") == "finish":
                peak = _peak_rss_mb()
                graph = {"macs_source": "unknown"}
                try:
                    flops = int(net.getFLOPS((1, 1, h, w)))
                    types = list(net.getLayerTypes())
                    graph = {"macs_per_call": flops // 2, "macs_source": "OpenCV getFLOPS / 2",
                             "ops": {t: int(net.getLayersCount(t)) for t in types},
                             "coverage": {"summary": "OpenCV DNN CPU (all layers)"}}
                except Exception as exc:  # noqa: BLE001 - optional
                    graph = {"macs_source": f"unknown ({_one_line(exc)})"}
                say({"ok": True, "event": "finished", "peak_rss_mb": peak, "baseline_rss_mb": baseline, "graph": graph})
                return 0
        return 0
    except Exception as exc:  # noqa: BLE001 - one line for the parent
        say({"ok": False, "error": _one_line(exc)})
        return 1


def upsample_dir(model: str, algo: str, scale: int, src: Path, dst: Path, threads: int = 0) -> int:
    """Upscale every uint8 luma ``.npy`` in ``src`` into ``dst``."""
    import cv2
    import numpy as np

    if threads:
        cv2.setNumThreads(threads)
    sr = cv2.dnn_superres.DnnSuperResImpl_create()
    sr.readModel(model)
    sr.setModel(algo, scale)
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.glob("*.npy")):
        y = np.load(path)
        out = sr.upsample(np.ascontiguousarray(np.repeat(y[:, :, None], 3, axis=2)))
        np.save(dst / path.name, np.ascontiguousarray(out[..., 0]))
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "upsample":
        p = argparse.ArgumentParser(prog="peer_worker.py upsample")
        p.add_argument("--model", required=True)
        p.add_argument("--algo", required=True)
        p.add_argument("--scale", type=int, required=True)
        p.add_argument("--in", dest="src", required=True)
        p.add_argument("--out", dest="dst", required=True)
        p.add_argument("--threads", type=int, default=0)
        a = p.parse_args(argv[1:])
        return upsample_dir(a.model, a.algo, a.scale, Path(a.src), Path(a.dst), a.threads)
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # native prints must not corrupt the protocol stream
    sys.stdout = sys.stderr
    if not argv:
        proto.write(json.dumps({"ok": False, "error": "usage: peer_worker.py SPEC_JSON | upsample ..."}) + "\n")
        return 2
    return serve(json.loads(argv[0]), proto, sys.stdin)


if __name__ == "__main__":
    sys.exit(main())
