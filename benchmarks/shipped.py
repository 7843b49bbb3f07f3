"""Quality of the shipped models (``edge_runtime/models``): float Keras vs the int8 TFLite file a CPU runs.

    python -m benchmarks.shipped      # writes benchmarks/results/shipped.json and shipped.md

Needs ``../shared`` (Set5, Set14); the float rows use the trained ``.keras`` sources kept in
``train/pretrained/`` (``make models`` refreshes them).
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
RESULTS = REPO / "benchmarks" / "results"


def main() -> int:
    from edge_runtime.backends import open_backend
    from edge_runtime.config import RuntimeConfig
    from edge_runtime.fsutil import write_json_atomic, write_text_atomic
    from train.data import load_image_set
    from train.evaluate import evaluate_images, keras_predictor, load_keras_model
    from train.quiet import import_tensorflow

    if not (SHARED / "data" / "sr" / "eval").is_dir():
        print(f"error: needs {SHARED}/data/sr/eval (Set5, Set14)", file=sys.stderr)
        return 2
    import_tensorflow()
    sets = {name: load_image_set([str(SHARED / "data" / "sr" / "eval" / name)]) for name in ("set5", "set14")}
    rows = []
    for scale in (2, 3, 4):
        artifact = REPO / "edge_runtime" / "models" / f"fsrcnn_x{scale}_int8.tflite"
        if not artifact.is_file():
            continue
        backend = open_backend(artifact, RuntimeConfig(threads=2))

        def int8(lr, backend=backend):
            return backend.run(lr[None, :, :, None].astype(np.float32))[0, :, :, 0]

        keras_path = REPO / "train" / "pretrained" / f"fsrcnn_x{scale}.keras"
        model = load_keras_model(keras_path) if keras_path.is_file() else None
        row = {"scale": scale, "artifact": artifact.name, "size_bytes": artifact.stat().st_size,
               "params": int(model.count_params()) if model else None}
        for name, images in sets.items():
            q = evaluate_images(int8, images, scale)
            row[f"{name}_int8_psnr_db"], row[f"{name}_int8_ssim"] = q.psnr_db, q.ssim
            if model is not None:
                f = evaluate_images(keras_predictor(model), images, scale)
                row[f"{name}_float_psnr_db"], row[f"{name}_float_ssim"] = f.psnr_db, f.ssim
        rows.append(row)
        print(row, flush=True)
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json_atomic(RESULTS / "shipped.json", {"date": when, "command": "python -m benchmarks.shipped", "rows": rows})
    lines = [f"Shipped models, {when}, `python -m benchmarks.shipped` (PROTOCOL.md; int8 = the .tflite a CPU runs)",
             "", "| scale | params | int8 file KiB | Set5 float | Set5 int8 | Set14 float | Set14 int8 |",
             "| --- | ---: | ---: | --- | --- | --- | --- |"]
    for r in rows:
        def cell(key, r=r):
            p, s = r.get(f"{key}_psnr_db"), r.get(f"{key}_ssim")
            return "-" if p is None else f"{p:.2f} / {s:.4f}"

        lines.append(f"| x{r['scale']} | {r['params'] or '-'} | {r['size_bytes'] / 1024:.1f} | {cell('set5_float')} | "
                     f"{cell('set5_int8')} | {cell('set14_float')} | {cell('set14_int8')} |")
    write_text_atomic(RESULTS / "shipped.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
