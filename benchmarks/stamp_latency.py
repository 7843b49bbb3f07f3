"""Copy measured latency into the shipped manifests (``reference_latency``), for ``deconv-edge models``.

    python -m benchmarks.stamp_latency benchmarks/results/speed_shipped_x{2,3,4}.json --threads 1

Reads ``benchmarks.speed`` or ``deconv-edge bench --json`` files and, for every artifact row at ``--size``
and ``--threads`` whose file is in ``edge_runtime/models/`` with the same size in bytes as measured, writes the
whole-frame p50 with where and how it was measured. Only the manifest changes (its artifact's sha256 does not).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deconv_edge_core.fsutil import write_json_atomic
from edge_runtime.inference.default_model import MODELS_DIR


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--size", default="240x320", help="low-resolution frame HxW (default 240x320)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    hw = [int(v) for v in args.size.lower().split("x")]
    for path in args.files:
        data = json.loads(path.read_text())
        rows = data.get("rows") or data.get("results") or []
        device = data.get("device_short") or (data.get("device") or {}).get("cpu_model", "?")
        for r in rows:
            if r.get("kind") != "artifact" or not r.get("frame") or r.get("threads") != args.threads \
                    or list(r.get("frame_hw") or []) != hw:
                continue
            artifact = MODELS_DIR / Path(r["artifact"]).name
            mpath = artifact.with_name(artifact.name + ".json")
            if not mpath.is_file() or artifact.stat().st_size != r.get("artifact_size_bytes"):
                continue
            manifest = json.loads(mpath.read_text())
            manifest["reference_latency"] = {
                "frame_p50_ms": round(r["frame"]["p50_ms"], 2), "input_hw": hw, "threads": args.threads,
                "device": device, "measured": data.get("created"), "command": data.get("command"),
                "run_id": data.get("run_id"), "load_avg_1m": (data.get("device") or {}).get("load_avg_1m"),
                "source": str(path)}
            write_json_atomic(mpath, manifest)
            print(f"{artifact.name}: {r['frame']['p50_ms']:.2f} ms ({path.name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
