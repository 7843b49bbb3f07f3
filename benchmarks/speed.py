"""``python -m benchmarks.speed``: x2 latency of the whole frame path, ours against the peer, in one run.

For each frame size (320x240 and 640x480 BGR by default) and thread count (1 and 2), one interleaved group
(see :mod:`edge_runtime.bench.runner`): every artifact (each upsampler form and precision), the peer's FSRCNN,
FSRCNN-small and ESPCN (OpenCV ``dnn_superres`` in ``.venv-peer``, each in its own worker process), plain
OpenCV bicubic, and the MAC-rate references of :mod:`edge_runtime.bench.references` (an int8 and an fp32
convolution through LiteRT, numpy's fp32 GEMM): each model's MAC/s over its own precision's reference tells
how much of the machine it uses.

Writes ``benchmarks/results/speed.json`` (with ``BENCH_RUN_ID`` from ``run_all.sh``, which names the run).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone

from .common import (
    PEER_WORKER,
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

SCHEMA = "deconv-edge-speed/2"
DEFAULT_SIZES = "240x320,480x640"  # HxW: 320x240 and 640x480 frames


def group_name(hw: tuple, threads: int) -> str:
    return f"{hw[1]}x{hw[0]} {threads}T"


def reference_key(spec) -> str:
    """Row key of a reference case: ``ref:int8-conv``, ``ref:fp32-conv``, ``ref:fp32-gemm``."""
    return "ref:fp32-gemm" if spec.kind == "gemm" else f"ref:{spec.option('precision')}-conv"


def main(argv=None) -> int:
    from deconv_edge_core.errors import UserError
    from deconv_edge_core.fsutil import sha256_file, write_json_atomic
    from edge_runtime.bench.cli import make_progress
    from edge_runtime.bench.config import DEFAULT_GEMM_N, CaseSpec, parse_input_size, parse_threads
    from edge_runtime.bench.fingerprint import device_fingerprint
    from edge_runtime.bench.ipc import SubprocessCase
    from edge_runtime.bench.references import reference_specs
    from edge_runtime.bench.schedule import run_groups

    p = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--artifacts", nargs="*", default=None,
                   help="artifact files or folders (default: out/benchmarks/artifacts, else edge_runtime/models)")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--sizes", default=DEFAULT_SIZES, help=f"LR frame sizes HxW, comma-separated ({DEFAULT_SIZES})")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--gemm-n", type=int, default=DEFAULT_GEMM_N)
    p.add_argument("--no-peer", action="store_true", help="leave out the OpenCV peer")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", default=str(RESULTS_DIR / "speed.json"))
    args = p.parse_args(argv)
    try:
        sizes = [parse_input_size(s) for s in args.sizes.split(",") if s.strip()]
        threads = parse_threads(args.threads)
        if args.runs < 1 or args.warmup < 0:
            raise UserError("--runs must be >= 1 and --warmup >= 0")
        artifacts = find_artifacts(args.artifacts if args.artifacts is not None else default_artifact_paths(),
                                   args.scale)
    except UserError as exc:
        say(f"error: {exc}")
        return 2
    notes = []
    if not artifacts:
        notes.append(f"no x{args.scale} artifact found in {args.artifacts or default_artifact_paths()}")
    peer = None
    peer_status = {"used": False, "problem": "left out (--no-peer)" if args.no_peer else None, "opencv": None}
    if not args.no_peer:
        env = peer_env(create=True)
        peer_status.update(problem=env.problem, opencv=env.opencv)
        if env.ok:
            peer = env
            peer_status["used"] = True
        else:
            say(f"warning: the peer's rows are left out: {env.problem}")
            notes.append(f"peer left out: {env.problem}")

    # (row key, case) per case; the same list for every group.
    def make_cases(hw: tuple, t: int) -> list:
        cases = []
        for a in artifacts:
            spec = CaseSpec(kind="artifact", label=a.label, threads=t, input_hw=hw, artifact=str(a.path.resolve()),
                            backend="auto", scale=a.scale)
            cases.append((a.key, SubprocessCase(spec)))
        if peer is not None:
            for name, path, algo in peer_models(args.scale):
                spec = CaseSpec(kind="peer", label=f"OpenCV {name} (peer)", threads=t, input_hw=hw, scale=args.scale,
                                options=(("model", str(path)), ("algo", algo)))
                cases.append((f"peer:{name}:x{args.scale}", SubprocessCase(spec, argv=[str(peer.python), str(PEER_WORKER)])))
        cases.append((f"bicubic:x{args.scale}", SubprocessCase(CaseSpec(kind="bicubic", label="bicubic (OpenCV)",
                                                                        threads=t, input_hw=hw, scale=args.scale))))
        cases += [(reference_key(spec), SubprocessCase(spec)) for spec in reference_specs(t, hw, args.gemm_n)]
        return cases

    keyed = {(hw, t): make_cases(hw, t) for hw in sizes for t in threads}
    device = device_fingerprint()
    t0 = time.perf_counter()
    results = run_groups([(group_name(hw, t), [c for _, c in cases]) for (hw, t), cases in keyed.items()],
                         args.runs, args.warmup, make_progress(args.quiet))
    keys = [(key, hw) for (hw, _t), cases in keyed.items() for key, _ in cases]
    digests: dict = {}
    rows = []
    for (key, hw), r in zip(keys, results):
        d = r.to_dict()
        if r.artifact and r.kind == "artifact":
            digests.setdefault(r.artifact, sha256_file(r.artifact))
        d.update(key=key, frame_size=f"{hw[1]}x{hw[0]}", artifact=rel(r.artifact) if r.artifact else None,
                 artifact_sha256=digests.get(r.artifact))
        rows.append(d)
        if r.error:
            notes.append(f"{r.label} ({r.group}): {r.error}")
    result = {"schema": SCHEMA, "run_id": run_id(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": command_line(), "scale": args.scale, "sizes_hw": [list(s) for s in sizes],
              "threads": list(threads), "runs": args.runs, "warmup": args.warmup, "device": device.to_dict(),
              "device_short": device.short(), "cpu_kind": device.cpu_kind(), "warnings": device.warnings(),
              "peer": peer_status, "notes": notes, "rows": rows, "wall_s": time.perf_counter() - t0}
    write_json_atomic(args.out, result)
    for w in device.warnings() + notes:
        say(f"note: {w}")
    say(f"wrote {args.out} ({len(rows)} rows, {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
