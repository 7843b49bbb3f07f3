"""Soak: the camera loop for 10,000 frames through the real CLI, its resident memory sampled from /proc.

    python -m benchmarks.soak                      # 10,000 frames of demo:// into segmented MP4 files
    python -m benchmarks.soak --frames 2000 --sink null

A leak of a few hundred bytes a frame shows here as megabytes. The run records into 10-second segments (the
writer, the pacer and the segment rotation are all in the loop) and reports the RSS after warm-up (the first
``--warmup-frames``, when interpreters, codecs and pools settle), at the end, and the growth between; the
result goes to ``benchmarks/results/soak.json``. The bar is growth < 5 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .common import RESULTS_DIR, command_line

REPO = Path(__file__).resolve().parents[1]
LIMIT_MB = 5.0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=10_000)
    p.add_argument("--size", default="64x48", help="demo frame size WxH (default 64x48: the loop, not the model)")
    p.add_argument("--fps", type=float, default=200.0, help="demo source rate (default 200)")
    p.add_argument("--sink", default="file", help="file (segmented MP4s in a temporary folder) or null")
    p.add_argument("--warmup-frames", type=int, default=1000)
    p.add_argument("--out", default=str(RESULTS_DIR / "soak.json"))
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        stats = Path(tmp) / "stats.json"
        sink = ["--sink", str(Path(tmp) / "soak.mp4"), "--segment", "10"] if args.sink == "file" else ["--sink", "null"]
        cmd = [sys.executable, "-m", "edge_runtime", "camera", "--source", f"demo://?size={args.size}&fps={args.fps:g}",
               *sink, "--max-frames", str(args.frames), "--stats-json", str(stats)]
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        samples: list = []  # (seconds since "running:", rss MB)
        started = threading.Event()

        def watch_stdout():
            for line in proc.stdout:
                if line.startswith("running: "):
                    started.set()
                watch_stdout.lines.append(line)
        watch_stdout.lines = []
        reader = threading.Thread(target=watch_stdout, daemon=True)
        reader.start()
        started.wait(120)
        t0 = time.perf_counter()
        while proc.poll() is None:
            try:
                samples.append((time.perf_counter() - t0, rss_mb(proc.pid)))
            except (OSError, RuntimeError):
                break
            time.sleep(0.25)
        proc.wait()
        reader.join(10)
        err = proc.stderr.read()
        if proc.returncode != 0:
            print("".join(watch_stdout.lines) + err, file=sys.stderr)
            return 1
        summary = json.loads(stats.read_text())
    wall = summary["wall_s"]
    fps = summary["frames"] / wall
    warm_t = args.warmup_frames / fps
    live = [s for s in samples if s[0] <= wall]
    warm = min((s for s in live if s[0] >= warm_t), key=lambda s: s[0] - warm_t, default=live[0])
    end = live[-1]
    growth = end[1] - warm[1]
    result = {"command": command_line(), "cli": " ".join(cmd[1:]), "frames": summary["frames"],
              "wall_s": round(wall, 1), "fps": round(fps, 1), "segments": summary.get("segments"),
              "rss_after_warmup_mb": round(warm[1], 1), "rss_end_mb": round(end[1], 1),
              "rss_max_mb": round(max(s[1] for s in live), 1), "rss_growth_mb": round(growth, 2),
              "limit_mb": LIMIT_MB, "passed": growth < LIMIT_MB, "samples": len(live)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"soak: {result['frames']} frames in {result['wall_s']} s ({result['fps']} FPS), RSS "
          f"{result['rss_after_warmup_mb']} MB after {args.warmup_frames} frames -> {result['rss_end_mb']} MB at the "
          f"end: growth {result['rss_growth_mb']:+.2f} MB (limit {LIMIT_MB} MB) -> "
          f"{'PASS' if result['passed'] else 'FAIL'}; wrote {args.out}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
