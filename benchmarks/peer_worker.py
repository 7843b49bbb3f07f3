"""The peer (OpenCV ``dnn_superres``) out of process, in its own venv (``opencv-contrib-python-headless<5``).

It runs under ``.venv-peer/bin/python``, which has only numpy and OpenCV 4.x contrib (OpenCV 5 in the main venv
cannot read these graphs): of this repository it loads only the standard-library parts of the bench protocol,
from the source folders (see :func:`_import_protocol`).

Two modes:

``peer_worker.py SPEC_JSON``
    A case of ``deconv-edge bench``'s worker protocol (``edge_runtime/bench/protocol.py``): the model call
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
import importlib.util
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _import_protocol():
    """The bench protocol from this checkout, without installing anything into the peer's venv.

    ``deconv_edge_core`` (the kernel) and ``edge_runtime.bench.{config,protocol}`` import only the standard
    library (tests/edge_runtime/test_layout.py checks it), and ``edge_runtime/__init__`` loads nothing, so both
    load from the source folders: the kernel's by path (it installs as ``deconv_edge_core`` from ``core/``).
    """
    if "deconv_edge_core" not in sys.modules:
        spec = importlib.util.spec_from_file_location("deconv_edge_core", REPO / "core" / "__init__.py",
                                                      submodule_search_locations=[str(REPO / "core")])
        module = importlib.util.module_from_spec(spec)
        sys.modules["deconv_edge_core"] = module
        spec.loader.exec_module(module)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from edge_runtime.bench import protocol

    return protocol


protocol = _import_protocol()


class PeerRunner(protocol.Runner):
    """One peer model: ``net.forward`` on the luma blob (model call), ``DnnSuperResImpl.upsample`` (frame)."""

    def prepare(self) -> None:
        super().prepare()
        import cv2
        import numpy as np

        if not hasattr(cv2, "dnn_superres"):
            raise RuntimeError(f"OpenCV {cv2.__version__} here has no dnn_superres (needs opencv-contrib)")
        self.cv2 = cv2
        self.model, self.algo = self.spec.option("model"), self.spec.option("algo")
        ycc = cv2.cvtColor(self.frame, cv2.COLOR_BGR2YCrCb)
        self.blob = (ycc[..., 0].astype(np.float32) / 255.0)[None, None]

    def load(self) -> None:
        self.sr = self.cv2.dnn_superres.DnnSuperResImpl_create()
        self.sr.readModel(self.model)
        self.sr.setModel(self.algo, int(self.spec.scale))

    def first(self) -> tuple:
        # A second copy of the graph for the model-call timing (DnnSuperResImpl does not expose its net); read
        # after load_ms, which is the peer's own load.
        self.net = self.cv2.dnn.readNetFromTensorflow(self.model)
        return super().first()

    def step(self) -> tuple:
        t0 = time.perf_counter()
        self.net.setInput(self.blob)
        self.net.forward()
        t1 = time.perf_counter()
        self.sr.upsample(self.frame)
        return protocol.ms(t0, t1), protocol.ms(t1, time.perf_counter()), {}

    def info(self) -> dict:
        h, w = (int(v) for v in self.spec.input_hw)
        return {"format": f"opencv-dnn {self.algo}", "scale": int(self.spec.scale), "upsampler": None,
                "status": None, "precision": "fp32",
                "runtime": {"backend": "opencv-dnn", "runtime": f"opencv-contrib {self.cv2.__version__}",
                            "threads": int(self.spec.threads), "model": os.path.basename(self.model)},
                "model_input_shape": [1, 1, h, w], "calls_per_frame": 1,
                "artifact_size_bytes": os.path.getsize(self.model),
                "notes": ["model call = net.forward on Y; frame = DnnSuperResImpl.upsample(BGR)"]}

    def graph(self) -> dict:
        h, w = (int(v) for v in self.spec.input_hw)
        flops = int(self.net.getFLOPS((1, 1, h, w)))
        types = list(self.net.getLayerTypes())
        return {"macs_per_call": flops // 2, "macs_source": "OpenCV getFLOPS / 2",
                "ops": {t: int(self.net.getLayersCount(t)) for t in types},
                "coverage": {"summary": "OpenCV DNN CPU (all layers)"}}


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
    return protocol.main(PeerRunner, argv, usage="peer_worker.py SPEC_JSON | upsample ...")


if __name__ == "__main__":
    sys.exit(main())
