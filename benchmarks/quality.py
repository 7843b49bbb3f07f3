"""``python -m benchmarks.quality``: Set5/Set14 Y-PSNR and SSIM per ``../shared/PROTOCOL.md``.

Rows: each of our artifacts (run through its runtime backend and the Enhancer's tiling, exactly as on a
device; and, under ``frame_path``, through the whole frame path: colour uint8 BGR in and out), bicubic, the
peer's FSRCNN, FSRCNN-small and ESPCN (OpenCV ``dnn_superres`` in ``.venv-peer``, out of process), and the published FSRCNN numbers from PROTOCOL.md as reference rows. Every model is scored by the
same code (``deconv_edge_train.evaluate.evaluate_images``). Bicubic and the peer are checked against the values
PROTOCOL.md measured; a difference over 0.05 dB is flagged.

Writes ``benchmarks/results/quality.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .common import (
    EVAL_SETS,
    PEER_WORKER,
    PROTOCOL,
    RESULTS_DIR,
    command_line,
    default_artifact_paths,
    find_artifacts,
    peer_env,
    peer_models,
    rel,
    run_id,
    say,
)

SCHEMA = "deconv-edge-quality/2"
#: Our measurement of bicubic/peer may differ from PROTOCOL.md's by this much before it is flagged.
CHECK_TOLERANCE_DB = 0.05
SCALES = (2, 3, 4)


# ---- reference numbers from PROTOCOL.md ------------------------------------------------------------------
def _triple(cell: str) -> dict:
    vals = [float(v) for v in re.findall(r"\d+\.\d+", cell)]
    return dict(zip(SCALES, vals)) if len(vals) == 3 else {}


def parse_protocol(text: str) -> dict:
    """Reference tables of PROTOCOL.md: ``bicubic`` (measured), ``published`` models, ``peer`` (measured).

    Returns ``{"bicubic": {scale: {"set5": dB, "set14": dB}}, "published": {name: {"set5": {scale: dB}, ...}},
    "peer": {name: {"set5": {scale: dB}, "set14": {...}}}}``.
    """
    out: dict = {"bicubic": {}, "published": {}, "peer": {}}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or set(cells[0]) <= set("- ") or cells[0] in ("scale", "model", "peer"):
            continue
        m = re.fullmatch(r"x([234])", cells[0])
        if m and len(cells) == 3:  # bicubic: | x2 | 33.67 (33.66) | 30.33 (30.24) |
            s5, s14 = (float(re.match(r"\d+\.\d+", c).group(0)) for c in cells[1:3])
            out["bicubic"][int(m.group(1))] = {"set5": s5, "set14": s14}
        elif len(cells) == 4 and _triple(cells[2]):  # | model | params | set5 x2/x3/x4 | set14 ... |
            out["published"][cells[0]] = {"params": cells[1], "set5": _triple(cells[2]), "set14": _triple(cells[3])}
        elif len(cells) == 3 and _triple(cells[1]):  # | peer | set5 ... | set14 ... |
            out["peer"][cells[0]] = {"set5": _triple(cells[1]), "set14": _triple(cells[2])}
    return out


# ---- predictors -------------------------------------------------------------------------------------------
def artifact_predictor(path: Path, threads: int):
    """LR luma 0..1 → HR luma 0..1 through the artifact's backend (tiled when its input shape is fixed)."""
    from edge_runtime.inference.config import RuntimeConfig
    from edge_runtime.inference.enhance import Enhancer

    enhancer = Enhancer(path, RuntimeConfig(threads=threads))
    lo, hi = enhancer.manifest.value_range

    def predict(lr: np.ndarray) -> np.ndarray:
        y = enhancer.upscale_y(np.asarray(lr, np.float32) * (hi - lo) + lo)
        return (y - lo) / (hi - lo)

    return predict


def _lr_key(lr: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(lr, np.float64).tobytes()).hexdigest()


def peer_predictor(python: Path, model: Path, algo: str, scale: int, lrs: list, threads: int):
    """Run the peer once over every LR picture (8-bit, as a device gives it) and serve the results by content.

    ``evaluate_images`` calls the predictor with the LR luma it derived; the same derivation (done by the
    caller, with the same functions) gives the same bytes, so a content hash finds each precomputed output.
    """
    outputs = {}
    with tempfile.TemporaryDirectory(prefix="peer-") as tmp:
        src, dst = Path(tmp, "in"), Path(tmp, "out")
        src.mkdir()
        for i, lr in enumerate(lrs):
            np.save(src / f"{i:04d}.npy", np.clip(np.rint(lr * 255.0), 0, 255).astype(np.uint8))
        run = subprocess.run([str(python), str(PEER_WORKER), "upsample", "--model", str(model), "--algo", algo,
                              "--scale", str(scale), "--in", str(src), "--out", str(dst), "--threads", str(threads)],
                             capture_output=True, text=True, timeout=3600)
        if run.returncode != 0:
            last = (run.stderr.strip().splitlines() or ["?"])[-1]
            raise RuntimeError(f"peer {model.name} failed: {last}")
        for i, lr in enumerate(lrs):
            outputs[_lr_key(lr)] = np.load(dst / f"{i:04d}.npy").astype(np.float32) / 255.0

    def predict(lr: np.ndarray) -> np.ndarray:
        return outputs[_lr_key(lr)]

    return predict


def lr_images(images: list, scale: int) -> list:
    """The LR luma (0..1) ``evaluate_images`` derives from each ground-truth picture."""
    from deconv_edge_train.protocol import degrade, modcrop, rgb_to_y

    return [degrade(rgb_to_y(modcrop(img.rgb, scale)), scale) / 255.0 for img in images]


# ---- main -------------------------------------------------------------------------------------------------
def _score(predict, sets: dict, scale: int, name: str) -> dict:
    from deconv_edge_train.evaluate import evaluate_images

    out = {}
    for set_name, images in sets.items():
        r = evaluate_images(predict, images, scale, model_name=name, data_name=set_name)
        out[set_name] = {"psnr_db": r.psnr_db, "ssim": r.ssim, "per_image": r.per_image}
    return out


def _score_frames(path: Path, threads: int, sets: dict, scale: int, name: str) -> dict:
    """Scores through the whole frame path (colour uint8 BGR in and out; ``evaluate_frames``)."""
    from deconv_edge_train.evaluate import evaluate_frames
    from edge_runtime.inference.config import RuntimeConfig
    from edge_runtime.inference.enhance import Enhancer

    enhancer = Enhancer(path, RuntimeConfig(threads=threads))
    out = {}
    for set_name, images in sets.items():
        r = evaluate_frames(enhancer, images, scale, model_name=name, data_name=set_name)
        out[set_name] = {"psnr_db": r.psnr_db, "ssim": r.ssim, "per_image": r.per_image}
    return out


def _fmt_scores(scores: dict) -> str:
    return ", ".join(f"{k} {v['psnr_db']:.2f} dB / {v['ssim']:.4f}" for k, v in scores.items())


def main(argv=None) -> int:
    from edge_runtime.machine import usable_cores

    p = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--artifacts", nargs="*", default=None,
                   help="artifact files or folders (default: out/benchmarks/artifacts, else edge_runtime/models)")
    p.add_argument("--scale", type=int, default=2, choices=SCALES)
    p.add_argument("--no-peer", action="store_true", help="leave out the OpenCV peer")
    p.add_argument("--threads", type=int, default=usable_cores(), help="threads for the models (speed only)")
    p.add_argument("--out", default=str(RESULTS_DIR / "quality.json"))
    args = p.parse_args(argv)

    from deconv_edge_core.fsutil import sha256_file, write_json_atomic
    from deconv_edge_train.data import load_image_set

    missing = [f"{k} ({v})" for k, v in EVAL_SETS.items() if not v.is_dir()]
    if missing:
        say(f"error: quality needs the evaluation sets: {', '.join(missing)} not found (../shared is absent)")
        return 2
    t0 = time.perf_counter()
    sets = {k: load_image_set([str(v)]) for k, v in EVAL_SETS.items()}
    ref = parse_protocol(PROTOCOL.read_text()) if PROTOCOL.is_file() else {"bicubic": {}, "published": {}, "peer": {}}
    scale = args.scale
    rows, checks, notes = [], [], []

    artifacts = find_artifacts(args.artifacts if args.artifacts is not None else default_artifact_paths(), scale)
    if not artifacts:
        notes.append(f"no x{scale} artifact found in {args.artifacts or default_artifact_paths()}")
    for a in artifacts:
        say(f"quality: {a.label} ({a.path.name})")
        scores = _score(artifact_predictor(a.path, args.threads), sets, scale, a.label)
        frames = _score_frames(a.path, args.threads, sets, scale, a.label)
        say(f"  {_fmt_scores(scores)}; frame path: {_fmt_scores(frames)}")
        rows.append({"key": a.key, "name": a.label, "kind": "ours", "format": a.format, "upsampler": a.upsampler,
                     "status": a.status, "artifact": rel(a.path), "artifact_sha256": sha256_file(a.path),
                     "size_bytes": a.size_bytes, **scores, "frame_path": frames})

    from deconv_edge_train.evaluate import bicubic_predictor

    say("quality: bicubic")
    scores = _score(bicubic_predictor(scale), sets, scale, "bicubic")
    rows.append({"key": f"bicubic:x{scale}", "name": "bicubic", "kind": "bicubic", **scores})
    for set_name in sets:
        expected = ref["bicubic"].get(scale, {}).get(set_name)
        if expected is not None:
            checks.append({"row": "bicubic", "set": set_name, "measured_db": scores[set_name]["psnr_db"],
                           "protocol_db": expected})

    peer_status = {"used": False, "problem": "left out (--no-peer)" if args.no_peer else None, "opencv": None}
    if not args.no_peer:
        env = peer_env(create=True)
        peer_status.update(problem=env.problem, opencv=env.opencv)
        if not env.ok:
            say(f"warning: the peer's rows are left out: {env.problem}")
            notes.append(f"peer left out: {env.problem}")
        else:
            peer_status["used"] = True
            lrs = {k: lr_images(v, scale) for k, v in sets.items()}
            all_lrs = [lr for v in lrs.values() for lr in v]
            for name, path, algo in peer_models(scale):
                say(f"quality: peer {name} ({path.name}, OpenCV {env.opencv})")
                predict = peer_predictor(env.python, path, algo, scale, all_lrs, args.threads)
                scores = _score(predict, sets, scale, name)
                say(f"  {_fmt_scores(scores)}")
                rows.append({"key": f"peer:{name}:x{scale}", "name": f"OpenCV {name} (peer)", "kind": "peer",
                             "model": path.name, "size_bytes": path.stat().st_size, **scores})
                for set_name in sets:
                    expected = ref["peer"].get(name, {}).get(set_name, {}).get(scale)
                    if expected is not None:
                        checks.append({"row": f"peer {name}", "set": set_name,
                                       "measured_db": scores[set_name]["psnr_db"], "protocol_db": expected})

    for name, entry in ref["published"].items():
        if name.startswith("FSRCNN"):
            short = name.split(", ")[0]  # "FSRCNN (56,12,4) (Dong et al. 2016)"
            rows.append({"key": f"published:{short}:x{scale}", "name": f"{short}, published", "kind": "published",
                         "params": entry["params"],
                         **{s: {"psnr_db": entry[s].get(scale), "ssim": None} for s in ("set5", "set14")}})

    for c in checks:
        c["diff_db"] = c["measured_db"] - c["protocol_db"]
        c["ok"] = abs(c["diff_db"]) <= CHECK_TOLERANCE_DB
        if not c["ok"]:
            notes.append(f"{c['row']} on {c['set']}: measured {c['measured_db']:.2f} dB, PROTOCOL.md says "
                         f"{c['protocol_db']:.2f} dB")
    result = {"schema": SCHEMA, "run_id": run_id(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": command_line(), "scale": scale, "protocol": "../shared/PROTOCOL.md",
              "sets": {k: len(v) for k, v in sets.items()}, "peer": peer_status, "rows": rows, "checks": checks,
              "notes": notes, "wall_s": time.perf_counter() - t0}
    write_json_atomic(args.out, result)
    for n in notes:
        say(f"note: {n}")
    say(f"wrote {args.out} ({len(rows)} rows, {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
