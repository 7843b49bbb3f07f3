"""``python -m benchmarks.speed``: x2 latency of the whole frame path, ours against the peer, in one run.

For each frame size (320x240 and 640x480 BGR by default) and thread count (1 and 2), one interleaved group
(see :mod:`edge_runtime.bench`): every artifact (each upsampler form and precision), the peer's FSRCNN,
FSRCNN-small and ESPCN (OpenCV ``dnn_superres`` in ``.venv-peer``, each in its own worker process), plain
OpenCV bicubic, and a numpy float32 GEMM. The GEMM is this CPU's practical multiply-accumulate rate with
that many threads, so each model's MAC/s over the GEMM's tells how much of the machine it uses.

Writes ``benchmarks/results/speed.json``.
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
    say,
)

SCHEMA = "deconv-edge-speed/1"
DEFAULT_SIZES = "240x320,480x640"  # HxW: 320x240 and 640x480 frames


def group_name(hw: tuple, threads: int) -> str:
    return f"{hw[1]}x{hw[0]} {threads}T"


def main(argv=None) -> int:
    from edge_runtime.bench import (
        DEFAULT_GEMM_N,
        CaseSpec,
        SubprocessCase,
        device_fingerprint,
        group_steps,
        parse_input_size,
        parse_threads,
        run_interleaved,
        with_ratios,
    )
    from edge_runtime.bench_cli import make_progress
    from edge_runtime.errors import UserError
    from edge_runtime.fsutil import write_json_atomic

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

    # (key, name, kind, spec-maker, worker argv) per case; the same list for every group.
    def make_cases(hw: tuple, t: int) -> list:
        cases = []
        for a in artifacts:
            spec = CaseSpec(kind="artifact", label=a.label, threads=t, input_hw=hw, artifact=str(a.path),
                            backend="auto", scale=a.scale)
            cases.append((a.key, SubprocessCase(spec)))
        if peer is not None:
            for name, path, algo in peer_models(args.scale):
                spec = CaseSpec(kind="peer", label=f"OpenCV {name} (peer)", threads=t, input_hw=hw, scale=args.scale,
                                options=(("model", str(path)), ("algo", algo)))
                cases.append((f"peer:{name}:x{args.scale}", SubprocessCase(spec, argv=[str(peer.python), str(PEER_WORKER)])))
        cases.append((f"bicubic:x{args.scale}", SubprocessCase(CaseSpec(kind="bicubic", label="bicubic (OpenCV)",
                                                                        threads=t, input_hw=hw, scale=args.scale))))
        cases.append(("gemm", SubprocessCase(CaseSpec(kind="gemm", label=f"numpy GEMM fp32 n={args.gemm_n}",
                                                      threads=t, input_hw=hw, gemm_n=args.gemm_n))))
        return cases

    groups = [(hw, t) for hw in sizes for t in threads]
    n_cases = len(make_cases(sizes[0], 1))
    progress = make_progress(args.quiet)
    progress.begin(len(groups) * group_steps(n_cases, args.runs, args.warmup))
    device = device_fingerprint()
    t0 = time.perf_counter()
    rows = []
    try:
        for hw, t in groups:
            keyed = make_cases(hw, t)
            results = run_interleaved([c for _, c in keyed], args.runs, args.warmup, group_name(hw, t), progress)
            results = with_ratios(results)
            gemm = next((r for k, r in zip([k for k, _ in keyed], results) if k == "gemm"), None)
            gemm_rate = gemm.model_gmacs_per_s if gemm is not None else None
            for (key, _), r in zip(keyed, results):
                d = r.to_dict()
                d.update(key=key, frame_size=f"{hw[1]}x{hw[0]}", artifact=rel(r.artifact) if r.artifact else None,
                         fraction_of_gemm=(r.model_gmacs_per_s / gemm_rate)
                         if r.model_gmacs_per_s and gemm_rate and key != "gemm" else None)
                rows.append(d)
                if r.error:
                    notes.append(f"{r.label} ({r.group}): {r.error}")
    finally:
        progress.end()
    result = {"schema": SCHEMA, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": command_line(), "scale": args.scale, "sizes_hw": [list(s) for s in sizes],
              "threads": list(threads), "runs": args.runs, "warmup": args.warmup, "device": device.to_dict(),
              "device_short": device.short(), "warnings": device.warnings(), "peer": peer_status, "notes": notes,
              "rows": rows, "wall_s": time.perf_counter() - t0}
    write_json_atomic(args.out, result)
    for w in device.warnings() + notes:
        say(f"note: {w}")
    say(f"wrote {args.out} ({len(rows)} rows, {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
