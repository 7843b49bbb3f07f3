"""``python -m benchmarks.int8_qat``: verify the int8 emulation of a file, fine-tune its weights through it, and
measure both files through the interpreter.

Prints (and writes as JSON with ``--json``) the file's and the emulation's Set5 PSNR before training, the byte
agreement, and the same after ``--steps`` of quantization-aware fine-tuning (``convert/int8_qat.py``) on
T91 + BSD200 patches. ``--out`` keeps the fine-tuned file (no manifest: it is an experiment, not an artifact).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .common import REPO

SHARED = REPO.parent / "shared"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.int8_qat", description=__doc__.splitlines()[0])
    p.add_argument("--artifact", required=True, help="a CPU int8 super-resolution .tflite (with its manifest)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--lr", type=float, default=2e-5, help="Adam learning rate (default 2e-5)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=48, help="low-resolution patch side")
    p.add_argument("--learn-scales", action="store_true", help="also learn the unpinned activation grids (LSQ)")
    p.add_argument("--scale-lr", type=float, default=1e-3, help="Adam learning rate of the log-scales")
    p.add_argument("--eval", default=str(SHARED / "data/sr/eval/set5"))
    p.add_argument("--out", help="write the fine-tuned .tflite here")
    p.add_argument("--json", help="write the numbers here")
    args = p.parse_args(argv)
    train_sets = [SHARED / "data/sr/train/t91", SHARED / "data/sr/train/bsd200"]
    if not all(s.is_dir() for s in train_sets) or not Path(args.eval).is_dir():
        print(f"error: needs {SHARED}/data/sr (training pictures and --eval)", file=sys.stderr)
        return 2
    from deconv_edge_core.fsutil import write_bytes_atomic, write_json_atomic
    from deconv_edge_core.manifest import load_manifest
    from deconv_edge_train.data import PatchSampler, load_image_set
    from deconv_edge_train.quiet import import_tensorflow

    import_tensorflow()
    from deconv_edge_convert.int8_qat import QatConfig, fine_tune
    from deconv_edge_convert.int8_sim import verify

    artifact = Path(args.artifact)
    manifest, _ = load_manifest(artifact)
    scale = int(manifest.scale)
    evals = load_image_set([args.eval])
    before = verify(artifact, evals, scale)
    print(f"before: file {before.psnr_file_db:.4f} dB, emulation {before.psnr_sim_db:.4f} dB "
          f"(gap {before.gap_db:.5f} dB, {before.identical_fraction:.4%} bytes identical)", flush=True)
    sampler = PatchSampler(load_image_set([str(s) for s in train_sets]), scale, args.patch, args.batch,
                           jitter=(1.0,), seed=1)
    t0 = time.perf_counter()
    tuned = fine_tune(artifact.read_bytes(), sampler,
                      QatConfig(steps=args.steps, learning_rate=args.lr, batch_size=args.batch,
                                lr_patch=args.patch, learn_scales=args.learn_scales,
                                scale_learning_rate=args.scale_lr), log=lambda m: print(m, flush=True))
    seconds = time.perf_counter() - t0
    out = Path(args.out) if args.out else Path("/tmp") / f"{artifact.stem}_qat.tflite"
    write_bytes_atomic(out, tuned)
    after = verify(out, evals, scale)
    print(f"after {args.steps} steps ({seconds:.0f} s): file {after.psnr_file_db:.4f} dB, emulation "
          f"{after.psnr_sim_db:.4f} dB (gap {after.gap_db:.5f} dB); change {after.psnr_file_db - before.psnr_file_db:+.4f} dB")
    if args.json:
        command = "python -m benchmarks.int8_qat " + " ".join(argv if argv is not None else sys.argv[1:])
        write_json_atomic(Path(args.json), {"command": command, "before": before.to_dict(),
                                            "after": after.to_dict(), "train_s": seconds, "file": str(out)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
