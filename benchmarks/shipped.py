"""The shipped models (``edge_runtime/models``): size, MACs, quality float vs int8, and latency against the peer.

    python -m benchmarks.shipped [--speed benchmarks/results/speed_shipped_x2.json ...]

Quality: every super-resolution ``*_int8.tflite`` CPU model with a trained ``.keras`` source in
``train/pretrained/`` (``make models`` refreshes both), on Set5 and Set14 per ``../shared/PROTOCOL.md`` (needs
``../shared``), and the int8 file through the whole frame path as well (colour uint8 BGR in and out,
``evaluate_frames``). Latency: read from ``python -m benchmarks.speed`` results given with ``--speed`` (the shipped
file's row and OpenCV's FSRCNN of the same scale in the same group, 320x240 frames, 1 and 2 threads by default); the
ratio is only taken within one interleaved group, and every speed file must be from this run (``BENCH_RUN_ID``).

Where the int8 loss goes: the float model is also run on the protocol's luma rounded to 8 bits (what the uint8
input of an int8 file holds), and the ``*_fp32.onnx`` file, where one ships, through the same frame path. So the
gate's loss (float on float input against int8) splits into the input's rounding and the file's own loss, and the
frame path compares int8 with fp32 on the same 8-bit colour frames.

Writes ``benchmarks/results/shipped.json`` and ``shipped.md`` (``--out``; ``--models`` for some of them).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .common import REPO, SHARED, run_id
from .common import RESULTS_DIR as RESULTS

PEER_LABEL = "OpenCV FSRCNN (peer)"


def macs_per_lr_pixel(model) -> int:
    """Multiply-accumulates per low-resolution (input) pixel of the trained graph (deconvolution form); strided
    levels count at their own resolution (:func:`deconv_edge_train.models.receptive.macs_per_input_pixel`)."""
    from deconv_edge_train.models.receptive import macs_per_input_pixel

    return macs_per_input_pixel(model)


def speed_rows(paths: list, group: str, run: str) -> dict:
    """``artifact file name -> (p50 ms, peer p50 ms, ratio, source)`` from speed JSONs (ratio within one run).

    Raises:
        SystemExit: a speed file from another run than ``run`` (its numbers do not belong in this table).
    """
    out = {}
    for path in paths:
        data = json.loads(Path(path).read_text())
        if data.get("run_id") != run:
            raise SystemExit(f"error: {path} is from run {data.get('run_id')}, not {run}: rerun benchmarks/run_all.sh "
                             "(or give BENCH_RUN_ID of that run)")
        rows = [r for r in data.get("rows", []) if r.get("group") == group and r.get("frame")]
        peer = next((r for r in rows if r.get("label") == PEER_LABEL), None)
        for r in rows:
            if r.get("kind") != "artifact" or not r.get("artifact"):
                continue
            ms = r["frame"]["p50_ms"]
            peer_ms = peer["frame"]["p50_ms"] if peer else None
            out[Path(r["artifact"]).name] = (ms, peer_ms, ms / peer_ms if peer_ms else None, str(path))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.shipped", description=__doc__.splitlines()[0])
    ap.add_argument("--speed", nargs="*", default=[], help="benchmarks.speed result JSONs to take latency from")
    ap.add_argument("--groups", default="320x240 1T,320x240 2T",
                    help="which speed groups to report, comma-separated (default '320x240 1T,320x240 2T')")
    ap.add_argument("--models", default="",
                    help="only these shipped models, comma-separated (e.g. 'sesr_x2,sesr_x3'; default: all)")
    ap.add_argument("--out", default=str(RESULTS / "shipped"),
                    help="where to write OUT.json and OUT.md (default benchmarks/results/shipped)")
    args = ap.parse_args(argv)
    only = {m.strip() for m in args.models.split(",") if m.strip()}
    out = Path(args.out)
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]

    from deconv_edge_core.fsutil import write_json_atomic, write_text_atomic
    from deconv_edge_train.data import load_image_set
    from deconv_edge_train.evaluate import evaluate_frames, evaluate_images, keras_predictor, load_keras_model
    from deconv_edge_train.protocol import quantize_8bit
    from deconv_edge_train.quiet import import_tensorflow
    from edge_runtime.inference.backends import open_backend
    from edge_runtime.inference.config import RuntimeConfig
    from edge_runtime.inference.enhance import Enhancer

    if not (SHARED / "data" / "sr" / "eval").is_dir():
        print(f"error: needs {SHARED}/data/sr/eval (Set5, Set14)", file=sys.stderr)
        return 2
    import_tensorflow()
    run = run_id()
    speeds = {g: speed_rows(args.speed, g, run) for g in groups} if args.speed else {}
    sets = {name: load_image_set([str(SHARED / "data" / "sr" / "eval" / name)]) for name in ("set5", "set14")}
    rows = []
    for artifact in sorted((REPO / "edge_runtime" / "models").glob("*_int8.tflite")):
        stem = artifact.name[: -len("_int8.tflite")]
        keras_path = REPO / "train" / "pretrained" / f"{stem}.keras"
        if not keras_path.is_file() or (only and stem not in only):
            continue
        backend = open_backend(artifact, RuntimeConfig(threads=2))
        if backend.manifest.task != "super-resolution":
            continue  # the denoiser has its own benchmark (benchmarks.denoise)
        scale = int(backend.manifest.scale)

        def int8(lr, backend=backend):
            return backend.run(lr[None, :, :, None].astype(np.float32))[0, :, :, 0]

        model = load_keras_model(keras_path)
        row = {"model": stem, "scale": scale, "artifact": artifact.name, "size_bytes": artifact.stat().st_size,
               "params": int(model.count_params()), "macs_per_lr_pixel": macs_per_lr_pixel(model)}
        enhancer = Enhancer(artifact, RuntimeConfig(threads=2))
        onnx_fp32 = artifact.with_name(f"{stem}_fp32.onnx")
        fp32_enhancer = Enhancer(onnx_fp32, RuntimeConfig(threads=2)) if onnx_fp32.is_file() else None
        float_predict = keras_predictor(model)

        def float_8bit(lr, predict=float_predict):
            return predict(quantize_8bit(lr * 255.0) / 255.0)
        for name, images in sets.items():
            q = evaluate_images(int8, images, scale)
            row[f"{name}_int8_psnr_db"], row[f"{name}_int8_ssim"] = q.psnr_db, q.ssim
            q = evaluate_frames(enhancer, images, scale)
            row[f"{name}_frame_psnr_db"], row[f"{name}_frame_ssim"] = q.psnr_db, q.ssim
            f = evaluate_images(float_predict, images, scale)
            row[f"{name}_float_psnr_db"], row[f"{name}_float_ssim"] = f.psnr_db, f.ssim
            f = evaluate_images(float_8bit, images, scale)
            row[f"{name}_float_8bit_input_psnr_db"], row[f"{name}_float_8bit_input_ssim"] = f.psnr_db, f.ssim
            if fp32_enhancer is not None:
                f = evaluate_frames(fp32_enhancer, images, scale)
                row[f"{name}_fp32_frame_psnr_db"], row[f"{name}_fp32_frame_ssim"] = f.psnr_db, f.ssim
        row["speed"] = {}
        for g, by_file in speeds.items():
            if artifact.name in by_file:
                ms, peer_ms, ratio, src = by_file[artifact.name]
                row["speed"][g] = {"latency_ms": ms, "peer_latency_ms": peer_ms, "ratio_to_peer": ratio,
                                   "speed_source": src}
        rows.append(row)
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    command = "python -m benchmarks.shipped" + (" --speed " + " ".join(args.speed) if args.speed else "")
    if args.groups != ap.get_default("groups"):
        command += f" --groups '{args.groups}'"
    if args.models:
        command += f" --models {args.models}"
    if args.out != ap.get_default("out"):
        command += f" --out {args.out}"
    cpu = next((json.loads(Path(p).read_text()).get("cpu_kind") for p in args.speed), None)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out.with_name(out.name + ".json"),
                      {"run_id": run, "date": when, "command": command, "cpu_kind": cpu, "rows": rows})
    lines = [f"Shipped models, run `{run}`, {when}, `{command}` (PROTOCOL.md; int8 = the .tflite a CPU runs; "
             f"latency: whole frame path, p50, T = threads; x peer = ours (int8) ÷ {PEER_LABEL} (fp32) of the same "
             f"scale in the same interleaved group; CPU: {cpu or 'not measured'})",
             "", "| model | params | MACs / LR px | int8 KiB | Set5 float | Set5 int8 | Set5 int8 frame path | "
             "Set14 float | Set14 int8 | Set14 int8 frame path | "
             + " | ".join(f"{g} ms | x peer (int8 vs fp32)" for g in groups) + " |",
             "| --- | ---: | ---: | ---: | --- | --- | --- | --- | --- | --- | "
             + " | ".join("---: | ---:" for _ in groups) + " |"]
    for r in rows:
        def cell(key, r=r):
            p, s = r.get(f"{key}_psnr_db"), r.get(f"{key}_ssim")
            return "-" if p is None else f"{p:.2f} / {s:.4f}"

        speed_cells = []
        for g in groups:
            sp = r["speed"].get(g) or {}
            speed_cells += [f"{sp['latency_ms']:.1f}" if sp.get("latency_ms") else "-",
                            f"{sp['ratio_to_peer']:.2f}" if sp.get("ratio_to_peer") else "-"]
        lines.append(f"| {r['model']} | {r['params']} | {r['macs_per_lr_pixel']} | {r['size_bytes'] / 1024:.1f} | "
                     f"{cell('set5_float')} | {cell('set5_int8')} | {cell('set5_frame')} | {cell('set14_float')} | "
                     f"{cell('set14_int8')} | {cell('set14_frame')} | "
                     + " | ".join(speed_cells) + " |")
    lines += ["", "Where the int8 loss goes (PSNR dB; input rounding = float − float on the 8-bit input, the file = "
              "that − int8, frame path = the fp32 .onnx − the int8 .tflite, both through the frame path):", "",
              "| model | set | float | float, 8-bit input | int8 | loss: input rounding | loss: the int8 file | "
              "fp32 frame path | int8 frame path | loss: frame path |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        for name, label in (("set5", "Set5"), ("set14", "Set14")):
            fl, f8, i8 = (r[f"{name}_{k}_psnr_db"] for k in ("float", "float_8bit_input", "int8"))
            fp, fr = r.get(f"{name}_fp32_frame_psnr_db"), r[f"{name}_frame_psnr_db"]
            lines.append(f"| {r['model']} | {label} | {fl:.3f} | {f8:.3f} | {i8:.3f} | {fl - f8:.3f} | {f8 - i8:.3f} | "
                         + (f"{fp:.3f} | {fr:.3f} | {fp - fr:.3f} |" if fp is not None else f"- | {fr:.3f} | - |"))
    write_text_atomic(out.with_name(out.name + ".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
