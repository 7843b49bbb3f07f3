"""``python -m benchmarks.architectures``: every registered model at its default size, cost against speed.

For each model of the registry (``deconv_edge_train.models.MODELS``) at x2 with ReLU: params and MACs per LR
pixel of the exported graph, then its int8 and fp32 TFLite files (sub-pixel form, as a CPU runs them) timed
through the whole frame path in one interleaved ``benchmarks.speed`` run with the OpenCV peer (fp32). Speed
does not depend on the weights, so the models are untrained (they start as bicubic); quality comes from the
campaign and shipped-model tables.

Writes ``benchmarks/results/architectures.json`` and ``architectures.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from .common import REPO, RESULTS_DIR, say

SHARED = REPO.parent / "shared"
PEER_LABEL = "OpenCV FSRCNN (peer)"


def _build_all(work: Path) -> list[dict]:
    from deconv_edge_train.models import ModelConfig, build_model, names_for
    from deconv_edge_train.models.blocks import collapse_model
    from deconv_edge_train.models.stored import save_model

    from .shipped import macs_per_lr_pixel

    out = []
    for name in names_for("super-resolution"):
        cfg = ModelConfig(name=name, scale=2, activation="relu")
        model = collapse_model(build_model(cfg))
        path = work / f"{name}_x2.keras"
        save_model(model, path, cfg)  # the config inside: the manifests name the model, not a guess
        out.append({"model": name, "keras": path, "params": int(model.count_params()),
                    "macs_per_lr_pixel": macs_per_lr_pixel(model)})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.architectures", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="240x320", help="LR frame sizes HxW (default 240x320, a 320x240 frame)")
    p.add_argument("--threads", default="2")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    if not (SHARED / "data" / "sr" / "train" / "t91").is_dir():
        print(f"error: needs {SHARED}/data/sr (calibration pictures)", file=sys.stderr)
        return 2
    from deconv_edge_train.quiet import import_tensorflow

    import_tensorflow()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="arch-") as tmp:
        work = Path(tmp)
        rows = _build_all(work)
        artifacts = []
        for row in rows:
            say(f"converting {row['model']}")
            subprocess.run([sys.executable, "-m", "edge_runtime", "convert", str(row["keras"]), "--formats",
                            "tflite-int8,tflite-fp32", "--calib", str(SHARED / "data/sr/train/t91"),
                            "--eval", str(SHARED / "data/sr/eval/set5"), "--out", str(work / row["model"])],
                           check=True, stdout=subprocess.DEVNULL)
            for prec in ("int8", "fp32"):
                row[f"{prec}_file"] = work / row["model"] / f"{row['model']}_x2_{prec}.tflite"
                artifacts.append(str(row[f"{prec}_file"]))
        speed_json = work / "speed.json"
        cmd = [sys.executable, "-m", "benchmarks.speed", "--artifacts", *artifacts, "--sizes", args.sizes,
               "--threads", args.threads, "--runs", str(args.runs), "--out", str(speed_json), "--quiet"]
        subprocess.run(cmd, check=True, cwd=REPO)
        speed = json.loads(speed_json.read_text())
    by_file = {}
    peer = {}
    for r in speed["rows"]:
        group = r.get("group")
        if not r.get("frame"):
            continue  # a row of the model alone (no frame path): not what this table compares
        if r.get("artifact"):
            by_file[(Path(r["artifact"]).name, group)] = r["frame"]["p50_ms"]
        if r.get("label") == PEER_LABEL:
            peer[group] = r["frame"]["p50_ms"]
    table = [["model", "params", "MACs / LR px", "group", "int8 ms", "fp32 ms", "peer fp32 ms",
              "int8 / peer fp32", "fp32 / peer fp32"]]
    result_rows = []
    for row in rows:
        for group, peer_ms in sorted(peer.items()):
            i8 = by_file.get((row["int8_file"].name, group))
            f32 = by_file.get((row["fp32_file"].name, group))
            rec = {"model": row["model"], "params": row["params"], "macs_per_lr_pixel": row["macs_per_lr_pixel"],
                   "group": group, "int8_ms": i8, "fp32_ms": f32, "peer_fp32_ms": peer_ms}
            result_rows.append(rec)
            table.append([row["model"], row["params"], row["macs_per_lr_pixel"], group,
                          f"{i8:.1f}" if i8 else "-", f"{f32:.1f}" if f32 else "-", f"{peer_ms:.1f}",
                          f"{i8 / peer_ms:.2f}" if i8 else "-", f"{f32 / peer_ms:.2f}" if f32 else "-"])
    from deconv_edge_core.fsutil import write_json_atomic, write_text_atomic
    from deconv_edge_core.text import markdown_table

    command = "python -m benchmarks.architectures " + " ".join(argv if argv is not None else sys.argv[1:])
    device = speed.get("device_short") or speed.get("device")
    write_json_atomic(out_dir / "architectures.json", {"created": speed.get("created"), "command": command.strip(),
                                                       "device": speed.get("device"), "rows": result_rows})
    md = (f"Architectures at x2, {speed.get('created')}, `{command.strip()}`; device: {device}. Untrained weights "
          "(speed only); whole frame path p50 in one interleaved run; peer = OpenCV dnn_superres FSRCNN x2 (fp32).\n\n"
          + markdown_table(table, numbers_right_from=1) + "\n")
    write_text_atomic(out_dir / "architectures.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
