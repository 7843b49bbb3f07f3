"""``deconv-edge train`` and ``deconv-edge evaluate`` (need the ``[train]`` extra, checked at run time)."""

from __future__ import annotations

import argparse
import math
import os

from deconv_edge_core.argtypes import positive_int as _positive_int
from deconv_edge_core.commands import TRAIN_HINT, command, require_modules, require_train_extra
from deconv_edge_core.errors import UserError


def _prepare_keras(what: str) -> None:
    """Check the extra for Keras' backend (``KERAS_BACKEND``, default TensorFlow) and import it quietly.

    Training is written with Keras' own train step and ``keras.ops``, so ``KERAS_BACKEND=jax`` trains on a
    machine that has JAX but no TensorFlow (a GPU box); checkpoints are interchangeable between backends.
    """
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "tensorflow":
        require_train_extra(what)
        from .quiet import import_tensorflow

        import_tensorflow()
    else:
        require_modules(f"{what} with KERAS_BACKEND={backend}", (backend, "keras", "PIL", "skimage"), TRAIN_HINT)


@command
class TrainCommand:
    name = "train"
    help = "train a deconvolution model (super-resolution or denoising) on image folders (resumable)"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", action="append", required=True, metavar="DIR",
                       help="folder of training images (repeatable); 'builtin' = scikit-image's sample photos")
        p.add_argument("--task", default="super-resolution", metavar="TASK",
                       help="super-resolution (default) or denoise")
        p.add_argument("--model", default=None,
                       help="model name from the registry (default: fsrcnn for super-resolution, rednet for denoise)")
        p.add_argument("--scale", type=int, default=None,
                       help="upscaling factor: 2, 3 or 4 (default 2); denoisers work at 1")
        budget = p.add_argument_group("budget (at least one)")
        budget.add_argument("--steps", type=_positive_int, help="training steps")
        budget.add_argument("--minutes", type=float, help="wall-clock minutes")
        p.add_argument("--tail-minutes", type=float, default=0.0, metavar="M",
                       help="after the --minutes budget, M more minutes at the final learning rate (shows whether "
                            "the validation curve has stopped gaining; default 0)")
        p.add_argument("--out", required=True, metavar="DIR", help="output folder (checkpoints, log, model.keras)")
        p.add_argument("--val", action="append", default=[], metavar="DIR", help="validation folder (repeatable)")
        p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
        p.add_argument("--sitting-minutes", type=float, metavar="M",
                       help="stop this sitting after M minutes (checkpoint and model written); the budget and "
                            "schedule stay those of --steps/--minutes, so --resume continues the same run")
        p.add_argument("--init", metavar="MODEL.keras|RUN_DIR",
                       help="start from a trained model's weights (fine-tuning; a new schedule from step 0)")
        arch = p.add_argument_group("architecture")
        arch.add_argument("--d", type=_positive_int, help="feature channels (fsrcnn default 56)")
        arch.add_argument("--s", type=_positive_int,
                          help="shrunk channels (fsrcnn default 12); sesr: expansion of its collapsible blocks (64)")
        arch.add_argument("--m", type=int, help="mapping layers (fsrcnn default 4)")
        arch.add_argument("--activation", default="prelu", help="prelu (paper), relu or relu6 (int8 friendly)")
        arch.add_argument("--upsampler-kernel", type=_positive_int, metavar="K",
                          help="deconvolution kernel size (default 9, the paper's; 11 at x3 and 16 at x4 hold "
                               "bicubic whole)")
        arch.add_argument("--noise-map", action="store_true",
                          help="denoisers: a noise-level input channel, one model for every sigma (runtime --strength)")
        arch.add_argument("--noise", default="awgn", choices=("awgn", "camera"),
                          help="denoisers: the noise to learn, awgn (the protocol's, default) or camera "
                               "(signal-dependent, demosaic-correlated, then JPEG, as live streams are)")
        arch.add_argument("--no-residual", action="store_true",
                          help="plain FSRCNN: no bicubic input channel in the deconvolution")
        opt = p.add_argument_group("optimisation")
        opt.add_argument("--batch", type=_positive_int, default=32,
                         help="patches per step: the global batch, split over all replicas and workers (default 32)")
        opt.add_argument("--patch", type=_positive_int, default=32, help="low-resolution patch side (default 32)")
        opt.add_argument("--lr", type=float, default=None, help="peak learning rate (default from the recipe)")
        opt.add_argument("--constant-fraction", type=float, default=0.02, metavar="F",
                         help="share of the budget at the peak learning rate before cosine decay (default 0.02)")
        opt.add_argument("--loss", default="l1-mse", help="l1, mse or l1-mse (default: L1 then MSE)")
        opt.add_argument("--no-jitter", action="store_true", help="no scale-jitter augmentation")
        opt.add_argument("--seed", type=int, default=0)
        opt.add_argument("--checkpoint-minutes", type=float, default=2.0)
        dist = p.add_argument_group("distribution (TensorFlow's tf.distribute)")
        dist.add_argument("--strategy", default="auto", choices=("auto", "none", "mirrored", "multi-worker"),
                          help="auto (default): multi-worker when TF_CONFIG or --workers is given, mirrored over "
                               "every local GPU when there are several, else one device")
        dist.add_argument("--workers", metavar="HOST:PORT,...",
                          help="every worker of a multi-machine run, the same list on each (instead of TF_CONFIG); "
                               "worker 0 is the chief, the only one that writes into --out")
        dist.add_argument("--worker-index", type=int, metavar="I", help="this machine's place in --workers")
        p.add_argument("--quiet", action="store_true", help="no progress bar (the summary line still prints)")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from .distribute import ClusterConfig, parse_workers

        cluster = ClusterConfig(strategy=args.strategy, workers=parse_workers(args.workers or ""),
                                worker_index=args.worker_index).validate()
        _prepare_keras("deconv-edge train")
        from .models import MODELS, ModelConfig, names_for
        from .tasks import TASKS
        from .train import TrainConfig, train

        task = TASKS.get(args.task)
        name = args.model or names_for(task.name)[0]  # the task's first registered model
        MODELS.get(name)
        scale = task.check_scale(args.scale if args.scale is not None else task.scales[0])
        model_cfg = ModelConfig(name=name, scale=scale, d=args.d, s=args.s, m=args.m,
                                activation=args.activation, residual=not args.no_residual,
                                upsampler_kernel=args.upsampler_kernel, noise_map=args.noise_map, noise=args.noise)
        if model_cfg.task != task.name:
            raise UserError(f"model '{name}' is a {model_cfg.task} model, not {task.name}; "
                            f"valid for {task.name}: {', '.join(names_for(task.name))}")
        extra = {} if args.lr is None else {"learning_rate": args.lr}
        cfg = TrainConfig(data=tuple(args.data), out=args.out, model=model_cfg, steps=args.steps,
                          minutes=args.minutes, tail_minutes=args.tail_minutes, val=tuple(args.val),
                          batch_size=args.batch, lr_patch=args.patch,
                          loss=args.loss, constant_fraction=args.constant_fraction, jitter=not args.no_jitter, seed=args.seed,
                          checkpoint_minutes=args.checkpoint_minutes, init=args.init, **extra)
        if args.sitting_minutes is not None and not (args.sitting_minutes > 0 and math.isfinite(args.sitting_minutes)):
            raise UserError("--sitting-minutes must be a positive number of minutes")
        report = train(cfg, resume=args.resume, quiet=args.quiet, sitting_minutes=args.sitting_minutes,
                       cluster=cluster)
        val = report.get("val") or {}
        tail = f", val PSNR {val['psnr_db']:.2f} dB" if val.get("psnr_db") is not None else ""
        state = "" if report.get("finished", True) else " (sitting over; --resume continues)"
        d = report.get("distribution") or {}
        where = (f" on {d['workers']} worker(s), {d['replicas']} replica(s), global batch {d['global_batch']}"
                 if d.get("strategy") not in (None, "none") else "")
        print(f"trained {report['steps']} steps{state}{where} in {report['wall_time_s']:.0f} s{tail} -> "
              f"{report['model_path']}", flush=True)
        return 0


@command
class EvaluateCommand:
    name = "evaluate"
    help = "quality per PROTOCOL.md: SR Y-PSNR/SSIM, or denoising PSNR per sigma (--task denoise)"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--task", default="super-resolution", help="super-resolution (default) or denoise")
        p.add_argument("--model", required=True, metavar="PATH|NAME",
                       help="a .keras model, or a reference: 'bicubic' (SR); 'noisy', 'nlm', 'bm3d' (denoise)")
        p.add_argument("--sigma", default="15,25,50", help="denoise: noise levels, comma-separated (15,25,50)")
        p.add_argument("--color", action="store_true",
                       help="denoise: colour pictures with noise in every channel, PSNR over RGB (a grey model "
                            "cleans their luma, as the runtime does; nlm and bm3d use their colour variants)")
        p.add_argument("--data", action="append", required=True, metavar="DIR",
                       help="folder of ground-truth images (repeatable)")
        p.add_argument("--scale", type=int, help="upscaling factor (read from the model when omitted)")
        p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
        p.add_argument("--per-image", action="store_true", help="print every image's numbers")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        _prepare_keras("deconv-edge evaluate")
        from deconv_edge_core.fsutil import write_json_atomic

        from .tasks import TASKS

        if TASKS.get(args.task).name == "denoise":
            return _evaluate_denoise(args)
        if args.color:
            raise UserError("--color is for --task denoise (super-resolution is scored on luma, per PROTOCOL.md)")
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


def _evaluate_denoise(args: argparse.Namespace) -> int:
    from deconv_edge_core.fsutil import write_json_atomic

    from .denoise import PEERS, evaluate_denoise, keras_denoiser, load_colour_set, load_grey_set, parse_sigmas
    from .evaluate import load_keras_model

    sigmas = parse_sigmas(args.sigma)
    if args.model in PEERS:
        denoise, name = PEERS[args.model], args.model
    elif args.model.endswith(".keras"):
        model = load_keras_model(args.model)
        denoise, name = keras_denoiser(model), args.model
    else:
        raise UserError(f"--model must be a .keras denoiser or one of {', '.join(PEERS)}, not '{args.model}'")
    images = load_colour_set(args.data) if args.color else load_grey_set(args.data)
    res = evaluate_denoise(denoise, images, sigmas, method=name, data=",".join(args.data))
    if args.per_image:
        for row in res.per_image:
            print(f"  {row['image']:<24} sigma {row['sigma']:g}  {row['psnr_db']:7.2f} dB")
    cells = "  ".join(f"sigma {k}: {v:.2f} dB" for k, v in res.psnr_db.items())
    print(f"{name} on {res.data}: {cells}")
    if args.json:
        write_json_atomic(args.json, res.to_dict())
    return 0


@command
class CampaignCommand:
    name = "campaign"
    help = "resume the shipped models' long training runs for one sitting (state in train/campaign/)"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--shared", default="../shared", metavar="DIR", help="the shared data folder (../shared)")
        p.add_argument("--sitting-minutes", type=float, default=150.0, metavar="M",
                       help="train for at most M minutes in all this sitting (default 150)")
        p.add_argument("--status", action="store_true", help="only print where each run stands")
        p.add_argument("--runs", metavar="NAME[,NAME]",
                       help="train only these runs, in this order (default: every unfinished run, in the campaign's "
                            "order); --status lists the names")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        _prepare_keras("deconv-edge campaign")
        from .campaign import RUNS, run_sitting, state_of

        if args.status:
            for run in RUNS:
                st = state_of(run)
                tail = f" + {run.tail_minutes / 60:.1f} h tail" if run.tail_minutes else ""
                where = "finished" if st.finished else "in its tail" if st.progress >= 1 else f"{100 * st.progress:.0f} %"
                print(f"{run.name:<15} step {st.step:>8}  {st.elapsed_s / 3600:5.2f} h of {run.minutes / 60:.1f} h{tail}"
                      f"  {where}")
            return 0
        if not (args.sitting_minutes > 0 and math.isfinite(args.sitting_minutes)):
            raise UserError("--sitting-minutes must be a positive number of minutes")
        runs = RUNS
        if args.runs:
            by_name = {r.name: r for r in RUNS}
            wanted = [n.strip() for n in args.runs.split(",") if n.strip()]
            unknown = [n for n in wanted if n not in by_name]
            if unknown or not wanted:
                raise UserError(f"unknown campaign run {', '.join(unknown) or '(none)'}; valid: {', '.join(by_name)}")
            runs = tuple(by_name[n] for n in wanted)
        for report in run_sitting(args.shared, args.sitting_minutes, quiet=args.quiet, runs=runs):
            val = (report.get("val") or {}).get("psnr_db")
            print(f"{report['config']['model']['name']} x{report['config']['model']['scale']}: step {report['steps']}, "
                  f"{report['wall_time_s'] / 3600:.2f} h{'' if val is None else f', val {val:.2f} dB'}"
                  f"{'' if report['finished'] else ' (continues next sitting)'}")
        return 0
