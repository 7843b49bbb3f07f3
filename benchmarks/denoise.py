"""``python -m benchmarks.denoise``: denoising quality and time on Set12 under PROTOCOL.md's noise rule.

Rows: the noisy input, OpenCV ``fastNlMeansDenoising`` (h = 0.9σ, 7, 21), BM3D (the ``bm3d`` package, the
``[bench]`` extra; left out with a note when it is not installed), every ``--model`` (a ``.keras`` denoiser;
the float model) and every ``--artifact`` (a converted file, through the product's frame path: the ``Enhancer``,
uint8 BGR in and out, strength set to the noise level). Each method's time is its wall time per megapixel at
σ = 25 on this machine, measured in this run (one process, one picture at a time).

``--frame-speed`` adds the issue's speed comparison: one 640x480 frame (the demo scene with σ = 25 noise),
each artifact's whole frame path (``--threads``, default 2) against OpenCV's ``fastNlMeansDenoising`` on the
grey frame and ``fastNlMeansDenoisingColored`` on the colour frame, interleaved in one run, median of
``--runs``.

``--color`` scores colour pictures instead (Set5 and Set14, the protocol's seeded noise in each of R, G and B,
PSNR over RGB): OpenCV's ``fastNlMeansDenoisingColored``, CBM3D, the float model on Y, Cr and Cb as the runtime
runs it, and each artifact's frame path (``--chroma denoise``, strength = the luma noise, 0.668σ).

Writes ``benchmarks/results/denoise.json`` and ``denoise.md`` (``denoise_color.*`` with ``--color``).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

from .common import REPO, RESULTS_DIR, say

SHARED = REPO.parent / "shared"
TIME_SIGMA = 25.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.denoise", description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", default=[], metavar="MODEL.keras", help="a denoiser (repeatable)")
    p.add_argument("--sigma", default="15,25,50")
    p.add_argument("--artifact", action="append", default=[], metavar="FILE",
                   help="a converted denoiser, run through the Enhancer (repeatable)")
    p.add_argument("--threads", type=int, default=2, help="interpreter threads for --artifact (default 2)")
    p.add_argument("--frame-speed", action="store_true", help="also time one 640x480 frame against OpenCV NLM")
    p.add_argument("--runs", type=int, default=10, help="--frame-speed repetitions (median)")
    p.add_argument("--no-bm3d", action="store_true", help="leave BM3D out (about a minute per megapixel)")
    p.add_argument("--color", action="store_true", help="colour pictures (Set5, Set14) with colour noise")
    p.add_argument("--data", action="append", default=[], metavar="DIR",
                   help="score these folders instead (repeatable; default Set12, or Set5 and Set14 with --color)")
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    sets = [Path(d) for d in args.data] or ([SHARED / "data" / "sr" / "eval" / n for n in ("set5", "set14")]
                                            if args.color else [SHARED / "data" / "denoise" / "eval" / "set12"])
    for folder in sets:
        if not folder.is_dir():
            print(f"error: needs {folder}", file=sys.stderr)
            return 2
    from deconv_edge_core.fsutil import write_json_atomic, write_text_atomic
    from deconv_edge_core.text import markdown_table
    from deconv_edge_train.denoise import (
        PEERS,
        evaluate_denoise,
        keras_denoiser,
        load_colour_set,
        load_grey_set,
        parse_sigmas,
    )

    sigmas = parse_sigmas(args.sigma)
    image_sets = [(f.name, (load_colour_set if args.color else load_grey_set)([f])) for f in sets]
    methods = [("noisy input", PEERS["noisy"]),
               ("OpenCV fastNlMeansDenoising" + ("Colored" if args.color else ""), PEERS["nlm"])]
    notes = []
    if args.no_bm3d:
        notes.append("BM3D left out (--no-bm3d)")
    elif importlib.util.find_spec("bm3d") is None:
        notes.append("BM3D left out: pip install bm3d (the [bench] extra)")
    else:
        methods.append(("CBM3D (bm3d package, bm3d_rgb)" if args.color else "BM3D (bm3d package)", PEERS["bm3d"]))
    if args.model:
        from deconv_edge_train.evaluate import load_keras_model
        from deconv_edge_train.quiet import import_tensorflow

        import_tensorflow()
        for path in args.model:
            methods.append((f"{Path(path).name} (float Keras)", keras_denoiser(load_keras_model(path))))
    enhancers = [(Path(a).name, _enhancer(a, args.threads)) for a in args.artifact]
    for name, e in enhancers:
        methods.append((f"{name} (frame path, {args.threads} threads)", _frame_path_denoiser(e)))
    rows = []
    for set_name, images in image_sets:
        megapixels = sum(im.shape[0] * im.shape[1] for _, im in images) / 1e6
        for name, fn in methods:
            say(f"{name} on {set_name}")
            res = evaluate_denoise(fn, images, sigmas, method=name, data=set_name)
            t0 = time.perf_counter()
            evaluate_denoise(fn, images, [TIME_SIGMA])
            s_per_mp = (time.perf_counter() - t0) / megapixels
            rows.append({"method": name, "set": set_name, "psnr_db": res.psnr_db, "s_per_megapixel": s_per_mp})
    speed = _frame_speed(enhancers, args.runs, args.threads) if args.frame_speed else []
    command = "python -m benchmarks.denoise " + " ".join(argv if argv is not None else sys.argv[1:])
    from datetime import datetime, timezone

    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "denoise_color" if args.color else "denoise"
    write_json_atomic(out / f"{stem}.json", {"created": when, "command": command.strip(), "sigmas": sigmas,
                                             "color": args.color, "rows": rows, "frame_speed": speed,
                                             "notes": notes})
    table = [["method", "set"] + [f"sigma {s:g} dB" for s in sigmas] + [f"s / MP (sigma {TIME_SIGMA:g})"]]
    for r in rows:
        table.append([r["method"], r["set"]] + [f"{r['psnr_db'][f'{s:g}']:.2f}" for s in sigmas]
                     + [f"{r['s_per_megapixel']:.3f}"])
    names = " and ".join(f.name for f in sets)
    what = f"{names} (colour; noise in each of R, G and B; PSNR over RGB)" if args.color else f"{names} (grey)"
    md = (f"Denoising on {what}, {when}, `{command.strip()}`; PROTOCOL.md noise rule (seeded, rounded and "
          "clipped to 8 bits). Times: this machine, one process, including the protocol's noise and scoring.\n\n"
          + markdown_table(table, numbers_right_from=1) + "\n" + "".join(f"\n- {n}" for n in notes) + "\n")
    if speed:
        md += (f"\nOne 640x480 frame (demo scene + σ {TIME_SIGMA:g} noise), median of {args.runs} interleaved runs, "
               "this machine:\n\n" + markdown_table(
                   [["method", "ms / frame", "x NLM (same kind)"]]
                   + [[r["method"], f"{r['ms']:.1f}", "-" if r["ratio"] is None else f"{r['ratio']:.3f}x"]
                      for r in speed], numbers_right_from=1) + "\n")
    write_text_atomic(out / f"{stem}.md", md)
    print(md)
    return 0


def _enhancer(path: str, threads: int, chroma=None):
    from edge_runtime.inference.config import RuntimeConfig
    from edge_runtime.inference.enhance import Enhancer

    return Enhancer(path, RuntimeConfig(threads=threads), chroma=chroma)


def _frame_path_denoiser(enhancer):
    """A ``Denoiser`` over the Enhancer: grey (or RGB) 0..1 → 8-bit BGR frame → the frame path → back."""
    import numpy as np

    from edge_runtime.inference.chroma import LUMA_PER_CHANNEL

    def run(noisy01, sigma: float):
        colour = noisy01.ndim == 3
        if enhancer.strength is not None:
            lo, hi = enhancer.manifest.noise.sigma_range
            luma_sigma = float(sigma) * (LUMA_PER_CHANNEL if colour else 1.0)
            enhancer.set_strength(min(max(luma_sigma, lo), hi))
        img8 = np.clip(np.round(noisy01 * 255.0), 0, 255).astype(np.uint8)
        if colour:  # RGB in the evaluator, BGR in the frame path
            return enhancer(np.ascontiguousarray(img8[..., ::-1]))[..., ::-1].astype(np.float32) / 255.0
        return enhancer(np.repeat(img8[:, :, None], 3, axis=2))[..., 0].astype(np.float32) / 255.0

    return run


def _frame_speed(enhancers, runs: int, threads: int) -> list:
    """Each artifact's frame path and OpenCV NLM (grey and colour) on one noisy 640x480 frame, interleaved."""
    import cv2
    import numpy as np

    from edge_runtime.video.sources import open_source

    src = open_source(f"demo://?size=640x480&fps=1000&noise={TIME_SIGMA:g}")
    src.open()
    frame = src.read()
    src.close()
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    h = 0.9 * TIME_SIGMA
    cases = [("OpenCV fastNlMeansDenoising (grey, h = 0.9σ, 7/21)",
              lambda: cv2.fastNlMeansDenoising(grey, None, h=h, templateWindowSize=7, searchWindowSize=21), "grey"),
             ("OpenCV fastNlMeansDenoisingColored (h = hColor = 0.9σ, 7/21)",
              lambda: cv2.fastNlMeansDenoisingColored(frame, None, h, h, 7, 21), "colour")]
    for name, e in enhancers:
        if e.strength is None:  # no noise-level input: luma only
            cases.append((f"{name} (frame path, luma only)", (lambda e=e: e(frame)), "grey"))
            continue
        keep = _enhancer(str(e.model_path), threads, "keep")
        cases.append((f"{name} (frame path, --chroma keep: luma only)", (lambda e=keep: e(frame)), "grey"))
        cases.append((f"{name} (frame path, --chroma denoise: Y, then Cr, Cb at half size)", (lambda e=e: e(frame)),
                      "colour"))
    times: dict = {name: [] for name, _, _ in cases}
    for _ in range(max(1, runs)):
        for name, fn, _ in cases:
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    ms = {name: float(np.median(v)) for name, v in times.items()}
    nlm = {kind: ms[name] for name, _, kind in cases[:2]}
    # Luma only is compared with grey NLM (both clean one plane); luma and chroma with colour NLM.
    return [{"method": name, "ms": ms[name], "ratio": None if i < 2 else ms[name] / nlm[kind]}
            for i, (name, _, kind) in enumerate(cases)]


if __name__ == "__main__":
    sys.exit(main())
