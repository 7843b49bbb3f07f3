"""``deconv-edge train`` and ``deconv-edge evaluate`` (need the ``[train]`` extra, checked at run time)."""

from __future__ import annotations

import argparse

from edge_runtime.argtypes import positive_int as _positive_int
from edge_runtime.commands import command, require_train_extra


@command
class TrainCommand:
    name = "train"
    help = "train a deconvolution SR model on image folders (resumable)"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", action="append", required=True, metavar="DIR",
                       help="folder of training images (repeatable); 'builtin' = scikit-image's sample photos")
        p.add_argument("--model", default="fsrcnn", help="model name (default fsrcnn; see 'fsrcnn', 'fsrcnn-s')")
        p.add_argument("--scale", type=int, default=2, help="upscaling factor: 2, 3 or 4 (default 2)")
        budget = p.add_argument_group("budget (at least one)")
        budget.add_argument("--steps", type=_positive_int, help="training steps")
        budget.add_argument("--minutes", type=float, help="wall-clock minutes")
        p.add_argument("--out", required=True, metavar="DIR", help="output folder (checkpoints, log, model.keras)")
        p.add_argument("--val", action="append", default=[], metavar="DIR", help="validation folder (repeatable)")
        p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
        p.add_argument("--init", metavar="MODEL.keras",
                       help="start from a trained model's weights (fine-tuning; a new schedule from step 0)")
        arch = p.add_argument_group("architecture")
        arch.add_argument("--d", type=_positive_int, help="feature channels (fsrcnn default 56)")
        arch.add_argument("--s", type=_positive_int, help="shrunk channels (fsrcnn default 12)")
        arch.add_argument("--m", type=int, help="mapping layers (fsrcnn default 4)")
        arch.add_argument("--activation", default="prelu", help="prelu (paper), relu or relu6 (int8 friendly)")
        arch.add_argument("--upsampler-kernel", type=_positive_int, metavar="K",
                          help="deconvolution kernel size (default 9, the paper's; 11 at x3 and 16 at x4 hold "
                               "bicubic whole)")
        arch.add_argument("--no-residual", action="store_true",
                          help="plain FSRCNN: no bicubic input channel in the deconvolution")
        opt = p.add_argument_group("optimisation")
        opt.add_argument("--batch", type=_positive_int, default=32, help="patches per step (default 32)")
        opt.add_argument("--patch", type=_positive_int, default=32, help="low-resolution patch side (default 32)")
        opt.add_argument("--lr", type=float, default=None, help="peak learning rate (default from the recipe)")
        opt.add_argument("--loss", default="l1-mse", help="l1, mse or l1-mse (default: L1 then MSE)")
        opt.add_argument("--no-jitter", action="store_true", help="no scale-jitter augmentation")
        opt.add_argument("--seed", type=int, default=0)
        opt.add_argument("--checkpoint-minutes", type=float, default=2.0)
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        require_train_extra("deconv-edge train")
        from .quiet import import_tensorflow

        import_tensorflow()
        from .models import ModelConfig
        from .protocol import check_scale
        from .train import TrainConfig, train

        model_cfg = ModelConfig(name=args.model, scale=check_scale(args.scale), d=args.d, s=args.s, m=args.m,
                                activation=args.activation, residual=not args.no_residual,
                                upsampler_kernel=args.upsampler_kernel)
        extra = {} if args.lr is None else {"learning_rate": args.lr}
        cfg = TrainConfig(data=tuple(args.data), out=args.out, model=model_cfg, steps=args.steps,
                          minutes=args.minutes, val=tuple(args.val), batch_size=args.batch, lr_patch=args.patch,
                          loss=args.loss, jitter=not args.no_jitter, seed=args.seed,
                          checkpoint_minutes=args.checkpoint_minutes, init=args.init, **extra)
        report = train(cfg, resume=args.resume, quiet=args.quiet)
        val = report.get("val") or {}
        tail = f", val PSNR {val['psnr_db']:.2f} dB" if val.get("psnr_db") is not None else ""
        print(f"trained {report['steps']} steps in {report['wall_time_s']:.0f} s{tail} -> {report['model_path']}")
        return 0


@command
class EvaluateCommand:
    name = "evaluate"
    help = "mean Y-PSNR / SSIM of a .keras model or bicubic per PROTOCOL.md"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", required=True, metavar="PATH|bicubic", help="a .keras model or 'bicubic'")
        p.add_argument("--data", action="append", required=True, metavar="DIR",
                       help="folder of ground-truth images (repeatable)")
        p.add_argument("--scale", type=int, help="upscaling factor (read from the model when omitted)")
        p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
        p.add_argument("--per-image", action="store_true", help="print every image's numbers")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        require_train_extra("deconv-edge evaluate")
        from .quiet import import_tensorflow

        import_tensorflow()
        from edge_runtime.fsutil import write_json_atomic

        from .evaluate import evaluate

        res = evaluate(args.model, args.data, args.scale)
        if args.per_image:
            for row in res.per_image:
                print(f"  {row['image']:<24} {row['psnr_db']:7.2f} dB  SSIM {row['ssim']:.4f}")
        print(f"{res.model} x{res.scale} on {res.data}: PSNR {res.psnr_db:.2f} dB  SSIM {res.ssim:.4f}"
              f"  ({len(res.per_image)} images)")
        if args.json:
            write_json_atomic(args.json, res.to_dict())
        return 0
