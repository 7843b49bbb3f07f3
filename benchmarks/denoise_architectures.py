"""``python -m benchmarks.denoise_architectures``: every registered denoiser at its default size, cost against speed.

For each model of ``names_for("denoise")`` (with the noise-level map): params and MACs per pixel, then its int8
TFLite file (untrained, with small random weights on the layer that writes the residual, since speed does not
depend on them) timed through the ``Enhancer`` luma path (``chroma="keep"``, 2 threads) on one 640x480 frame of
the demo scene with σ 25 noise, interleaved with OpenCV's ``fastNlMeansDenoising`` on the same frame, median of
``--runs``. Quality comes from the campaign logs and ``benchmarks.denoise``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import REPO

SHARED = REPO.parent / "shared"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.denoise_architectures", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    calib, evals = SHARED / "data/sr/train/t91", SHARED / "data/denoise/eval/set12"
    if not calib.is_dir() or not evals.is_dir():
        print(f"error: needs {calib} and {evals}", file=sys.stderr)
        return 2
    import cv2
    import numpy as np

    from deconv_edge_train.quiet import import_tensorflow

    import_tensorflow()
    from deconv_edge_train.models import ModelConfig, build_model, names_for
    from deconv_edge_train.models.receptive import macs_per_input_pixel
    from deconv_edge_train.models.stored import save_model
    from edge_runtime.inference.config import RuntimeConfig
    from edge_runtime.inference.enhance import Enhancer
    from edge_runtime.video.sources import open_source

    src = open_source("demo://?size=640x480&fps=1000&noise=25")
    src.open()
    frame = src.read()
    src.close()
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dnarch-") as tmp:
        for name in names_for("denoise"):
            cfg = ModelConfig(name=name, scale=1, activation="relu", noise_map=True)
            model = build_model(cfg)
            rng = np.random.default_rng(0)
            layer = next(la for la in model.layers[::-1] if la.trainable and la.get_weights()
                         and not np.any(la.get_weights()[0]))
            layer.set_weights([rng.normal(0, 0.01, w.shape).astype(np.float32) for w in layer.get_weights()])
            path = Path(tmp) / f"{name}_x1.keras"
            save_model(model, path, cfg)
            subprocess.run([sys.executable, "-m", "edge_runtime", "convert", str(path), "--formats", "tflite-int8",
                            "--calib", str(calib), "--eval", str(evals), "--out", str(Path(tmp) / name)],
                           check=True, stdout=subprocess.DEVNULL)
            art = Path(tmp) / name / f"{name}_x1_int8.tflite"
            rows.append({"model": name, "params": int(model.count_params()),
                         "macs_per_pixel": macs_per_input_pixel(model), "size_bytes": art.stat().st_size,
                         "enhancer": Enhancer(art, RuntimeConfig(threads=args.threads), chroma="keep")})
        times = {r["model"]: [] for r in rows}
        nlm = []
        for _ in range(max(1, args.runs)):
            t0 = time.perf_counter()
            cv2.fastNlMeansDenoising(grey, None, h=22.5, templateWindowSize=7, searchWindowSize=21)
            nlm.append((time.perf_counter() - t0) * 1e3)
            for r in rows:
                t0 = time.perf_counter()
                r["enhancer"](frame)
                times[r["model"]].append((time.perf_counter() - t0) * 1e3)
    nlm_ms = float(np.median(nlm))
    command = ("python -m benchmarks.denoise_architectures " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    print(f"`{command}`; "
          f"640x480, {args.threads} threads, median of {args.runs}; OpenCV fastNlMeansDenoising {nlm_ms:.1f} ms\n")
    print("| model | params | MACs / px | int8 KiB | int8 ms (luma) | x grey NLM |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        ms = float(np.median(times[r["model"]]))
        print(f"| {r['model']} | {r['params']:,} | {r['macs_per_pixel']:,} | {r['size_bytes'] / 1024:.1f} | "
              f"{ms:.1f} | {ms / nlm_ms:.3f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
