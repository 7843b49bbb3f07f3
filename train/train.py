"""Training loop: resumable, time- or step-budgeted, with checkpoints, a CSV log and ``report.json``.

Layout of ``--out``::

    train_config.json   the TrainConfig (a resumed run must match it)
    checkpoint.json     pointer to the newest complete checkpoint (written last, atomically)
    ckpt-<step>/        model weights + optimizer state + step/elapsed time
    log.csv             step, loss, learning rate, elapsed seconds, val PSNR
    model.keras         the final model (safe-mode loadable)
    report.json         config, data, steps, wall time, validation PSNR
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from deconv_edge_core.errors import UserError
from deconv_edge_core.fsutil import atomic_path, write_json_atomic

from .checkpoint import Checkpointer, load_checkpoint_weights
from .data import DEFAULT_JITTER, PatchSampler, describe_sources, load_image_set
from .models import ModelConfig, build_model

LOSSES = ("l1", "mse", "l1-mse")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    Attributes:
        data: image folders (or ``builtin``).
        out: output folder.
        model: the model to train.
        steps / minutes: budget; whichever is given (both: the first reached). Progress for the learning-rate
            schedule is the larger of the two fractions, so a time budget still anneals fully.
        tail_minutes: after a ``minutes`` budget, train this much longer at the final (1 %) learning rate and
            with the final loss. A curve that has stopped gaining shows it here, where the decay no longer moves
            it (the campaign's convergence check reads the last two hours).
        val: optional folders evaluated at every checkpoint and at the end.
        batch_size, lr_patch: patches per step and low-resolution patch side.
        learning_rate: peak Adam learning rate (2 % warm-up, held until ``constant_fraction`` of the budget,
            then cosine decay to 1 %).
        constant_fraction: share of the budget at the peak learning rate before the decay starts.
        loss: ``l1``, ``mse`` or ``l1-mse`` (L1 for the first 70 %, then MSE: PSNR is an MSE metric).
        jitter: use scale-jitter augmentation.
        seed: seeds weights and patch sampling.
        checkpoint_minutes: wall time between checkpoints.
        init: a trained ``.keras`` model whose weights start this run (fine-tuning; the upsampler may
            have another kernel size, see :func:`train.models.base.transfer_weights`). Ignored on resume.
    """

    data: tuple = ()
    out: str = "runs/default"
    model: ModelConfig = field(default_factory=ModelConfig)
    steps: Optional[int] = None
    minutes: Optional[float] = None
    tail_minutes: float = 0.0
    val: tuple = ()
    batch_size: int = 32
    lr_patch: int = 32
    learning_rate: float = 1e-3
    constant_fraction: float = 0.02
    loss: str = "l1-mse"
    jitter: bool = True
    seed: int = 0
    checkpoint_minutes: float = 2.0
    init: Optional[str] = None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["data"], d["val"] = list(self.data), list(self.val)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        d["model"] = ModelConfig(**d["model"])
        d["data"], d["val"] = tuple(d.get("data", ())), tuple(d.get("val", ()))
        return cls(**d)

    def validate(self) -> TrainConfig:
        if self.steps is None and self.minutes is None:
            raise UserError("give a budget: --steps N or --minutes M")
        if self.steps is not None and self.steps <= 0:
            raise UserError("--steps must be a positive integer")
        if self.minutes is not None and self.minutes <= 0:
            raise UserError("--minutes must be positive")
        if not (math.isfinite(self.tail_minutes) and self.tail_minutes >= 0):
            raise UserError("--tail-minutes must be zero or a positive number of minutes")
        if self.tail_minutes and (self.minutes is None or self.steps is not None):
            raise UserError("--tail-minutes follows a time budget: give --minutes M and no --steps")
        if self.loss not in LOSSES:
            raise UserError(f"unknown loss '{self.loss}'; valid: {', '.join(LOSSES)}")
        if not 0.0 <= self.constant_fraction < 1.0:
            raise UserError("--constant-fraction must be in [0, 1)")
        if self.batch_size <= 0 or self.lr_patch < 8:
            raise UserError("--batch must be positive and --patch at least 8")
        return self


def _progress(cfg: TrainConfig, step: int, elapsed_s: float) -> float:
    fr = []
    if cfg.steps:
        fr.append(step / cfg.steps)
    if cfg.minutes:
        fr.append(elapsed_s / (cfg.minutes * 60.0))
    return min(1.0, max(fr))


def _finished(cfg: TrainConfig, step: int, elapsed_s: float) -> bool:
    """Whether the budget and the tail after it are both spent."""
    if _progress(cfg, step, elapsed_s) < 1.0:
        return False
    return cfg.tail_minutes <= 0 or elapsed_s >= (cfg.minutes + cfg.tail_minutes) * 60.0


def learning_rate_at(cfg: TrainConfig, progress: float) -> float:
    """2 % linear warm-up, the peak until ``constant_fraction``, then cosine decay to 1 % of the peak."""
    warm = 0.02
    if progress < warm:
        return cfg.learning_rate * max(progress / warm, 0.05)
    hold = max(warm, min(cfg.constant_fraction, 0.99))
    if progress < hold:
        return cfg.learning_rate
    t = (progress - hold) / (1 - hold)
    return cfg.learning_rate * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def l1_weight_at(cfg: TrainConfig, progress: float) -> float:
    if cfg.loss == "l1":
        return 1.0
    if cfg.loss == "mse":
        return 0.0
    return 1.0 if progress < 0.7 else 0.0


def _run_model(run_dir: Path):
    """The model of a training run folder, at its newest checkpoint (to start another run from)."""
    stored = TrainConfig.from_dict(json.loads((run_dir / "train_config.json").read_text()))
    state = Checkpointer(run_dir).latest()
    if state is None:
        raise UserError(f"--init: '{run_dir}' has no checkpoint yet")
    model = build_model(stored.model)
    load_checkpoint_weights(model, run_dir / state["dir"])
    return model


def _val_psnr(model, images, model_cfg: ModelConfig) -> Optional[float]:
    """Validation PSNR: the SR protocol at the model's scale, or denoising at σ = 25 (both on ``--val``)."""
    if not images:
        return None
    if model_cfg.task == "denoise":
        from .denoise import grey_of, val_psnr_db

        return val_psnr_db(model, [(img.name, grey_of(img.rgb)) for img in images])
    from .evaluate import evaluate_images, keras_predictor

    return evaluate_images(keras_predictor(model), images, model_cfg.scale).psnr_db


def _sampler(cfg: TrainConfig, images, seed: int, batch: Optional[int] = None):
    """Training batches for the model's task (``batch`` patches each; default ``cfg.batch_size``)."""
    batch = cfg.batch_size if batch is None else batch
    if cfg.model.task == "denoise":
        from .denoise import DenoisePatchSampler, grey_of

        return DenoisePatchSampler([grey_of(img.rgb) for img in images], cfg.lr_patch, batch,
                                   noise_map=cfg.model.noise_map, seed=seed, noise=cfg.model.noise)
    return PatchSampler(images, cfg.model.scale, cfg.lr_patch, batch,
                        jitter=DEFAULT_JITTER if cfg.jitter else (1.0,), seed=seed)


def _version_of(module: str) -> Optional[str]:
    """The version of an already imported module (``None`` when this run did not use it)."""
    import sys

    mod = sys.modules.get(module)
    return getattr(mod, "__version__", None) if mod is not None else None


def _init_from(model, cfg: TrainConfig) -> None:
    """Start from the weights of ``cfg.init``: a ``.keras`` model, or a training run folder (its checkpoint)."""
    import keras

    from .models.base import transfer_weights

    try:
        if Path(cfg.init).is_dir() and (Path(cfg.init) / "train_config.json").is_file():
            src = _run_model(Path(cfg.init))
        else:
            src = keras.models.load_model(cfg.init, compile=False, safe_mode=True)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - any load failure is the user's file
        raise UserError(f"--init: cannot load '{cfg.init}' as a Keras model ({type(exc).__name__}); "
                        "give a .keras file written by 'deconv-edge train'") from None
    skipped = transfer_weights(src, model, cfg.model.scale)
    if skipped:
        raise UserError(f"--init: '{cfg.init}' does not fit {cfg.model.name} x{cfg.model.scale} "
                        f"(layers {', '.join(skipped)} differ); init from a model of the same shape")


def train(cfg: TrainConfig, resume: bool = False, quiet: bool = False, sitting_minutes: Optional[float] = None,
          cluster=None) -> dict:
    """Run (or resume) a training and return its report.

    Args:
        cfg: the run (``cfg.batch_size`` is the global batch under a strategy).
        resume: continue the run in ``cfg.out``.
        quiet: no progress bar.
        sitting_minutes: stop this sitting after that much wall time (checkpoint, model and report written,
            ``report["finished"]`` false); the budget and schedule of ``cfg`` are unchanged, so a campaign
            spread over many sittings anneals as one run.
        cluster: a :class:`deconv_edge_train.distribute.ClusterConfig` (several GPUs or machines); ``None`` = one device,
            or ``TF_CONFIG`` when set. Only the chief writes into ``cfg.out``.

    Raises:
        UserError: bad configuration or data, a run already in ``out`` without ``resume``, or a
            ``resume`` whose configuration differs from the stored one.
    """
    cfg.validate()
    from .distribute import adapt_model, make_distribution

    dist = make_distribution(cluster)  # first: collectives are configured before any other TensorFlow work
    local_batch = dist.local_batch(cfg.batch_size)
    out = Path(cfg.out)
    ckpt = Checkpointer(out)
    stored_cfg = out / "train_config.json"
    state = None
    if dist.is_chief and (stored_cfg.is_file() or ckpt.pointer.is_file()):
        if not resume:
            raise UserError(f"'{out}' already holds a training run; pass --resume to continue it or pick a new --out")
        state = ckpt.latest()
        if stored_cfg.is_file():
            prev = TrainConfig.from_dict(json.loads(stored_cfg.read_text()))
            if prev.model != cfg.model:
                raise UserError(f"--resume: '{out}' trains {prev.model}, not {cfg.model}")
    done = bool(state and _finished(cfg, int(state["step"]), float(state["elapsed_s"]))
                and (out / "report.json").is_file() and (out / "model.keras").is_file())
    # The other workers learn the chief's state (they need no copy of its files).
    has_state, start_step, start_elapsed, done = dist.broadcast(
        [], [1.0 if state else 0.0, state["step"] if state else 0, state["elapsed_s"] if state else 0.0, done])
    if not dist.is_chief and has_state:
        state = {"step": int(start_step), "elapsed_s": float(start_elapsed)}
    if done:
        # Already finished within this budget (e.g. `make models` run again): nothing to train, and its
        # model and report stay as they are rather than being rewritten by an empty session.
        if not dist.is_chief:
            return {"steps": int(start_step), "finished": True, "wall_time_s": float(start_elapsed),
                    "model_path": "the chief's --out", "val": None}
        return json.loads((out / "report.json").read_text())
    if cfg.init and not state and not Path(cfg.init).exists():
        raise UserError(f"--init: no model file '{cfg.init}'; give a .keras model written by 'deconv-edge train'")
    images = load_image_set(cfg.data)
    val_images = load_image_set(cfg.val) if cfg.val else []
    # Each worker cuts its own share of the global batch from its own stream of patches.
    sampler = _sampler(cfg, images, seed=cfg.seed + (state["step"] if state else 0) + 7919 * dist.worker_index,
                       batch=local_batch)

    import keras

    keras.utils.set_random_seed(cfg.seed)
    with dist.scope():
        model = build_model(cfg.model)
        optimizer = keras.optimizers.Adam(learning_rate=cfg.learning_rate)
        step, elapsed_prev = 0, 0.0
        if state and dist.is_chief:
            ckpt.restore(model, optimizer, state)
        elif cfg.init and not state and dist.is_chief:
            _init_from(model, cfg)
        if state:
            step, elapsed_prev = int(state["step"]), float(state["elapsed_s"])
        adapt_model(dist, model)
        if dist.num_workers > 1:
            optimizer.build(model.trainable_variables)
            dist.broadcast(list(model.weights) + list(optimizer.variables), [])
    if dist.is_chief:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(stored_cfg, cfg.to_dict())

    # The step is Keras' own compiled train step, so training runs on any Keras 3 backend (TensorFlow here,
    # JAX on a GPU box without TensorFlow); the loss switch (L1, then MSE) recompiles once.
    compiled_loss: list[str] = []

    def train_step(lr_b, hr_b, l1_weight: float) -> float:
        want = "mean_absolute_error" if l1_weight >= 0.5 else "mean_squared_error"
        if compiled_loss != [want]:
            with dist.scope():
                model.compile(optimizer=optimizer, loss=want)
            compiled_loss[:] = [want]
        return train_batch(dist, model, lr_b, hr_b)

    from .distribute import train_batch

    log_path = out / "log.csv" if dist.is_chief else Path(os.devnull)
    new_log = dist.is_chief and not log_path.is_file()
    log_fh = open(log_path, "a", newline="")
    log = csv.writer(log_fh, lineterminator="\n")
    if new_log:
        log.writerow(["step", "loss", "learning_rate", "elapsed_s", "val_psnr_db"])

    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=step, unit="step", disable=quiet or not dist.is_chief, dynamic_ncols=True,
               desc=f"{cfg.model.name} x{cfg.model.scale}")
    interrupted: list[int] = []

    def _on_signal(signum, _frame):  # finish the current step, checkpoint, then stop
        interrupted.append(signum)

    old_handlers = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    t0 = time.monotonic()
    sitting_end = t0 + sitting_minutes * 60.0 if sitting_minutes else math.inf
    last_ckpt = t0
    losses: list[float] = []
    val_psnr = None
    try:
        it = iter(sampler)
        while True:
            # Every worker takes the chief's clock and stops when any worker is asked to (one all-reduce).
            elapsed, (signalled, sitting_over) = dist.agree(elapsed_prev + time.monotonic() - t0,
                                                            (bool(interrupted), time.monotonic() >= sitting_end))
            if signalled and not interrupted:
                interrupted.append(signal.SIGTERM)  # another worker was stopped: stop at the same step
            if _finished(cfg, step, elapsed) or signalled or sitting_over:
                break
            prog = _progress(cfg, step, elapsed)
            lr_now = learning_rate_at(cfg, prog)
            optimizer.learning_rate.assign(lr_now)
            lr_b, hr_b = next(it)
            loss = train_step(lr_b, hr_b, l1_weight_at(cfg, prog))
            if not math.isfinite(loss):
                raise UserError(f"loss became {loss} at step {step}; lower --lr (now {cfg.learning_rate})")
            step += 1
            losses.append(loss)
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.5f}")
                log.writerow([step, f"{np.mean(losses[-20:]):.6g}", f"{lr_now:.6g}",
                              f"{elapsed:.1f}", ""])
                log_fh.flush()
            if dist.is_chief and time.monotonic() - last_ckpt >= cfg.checkpoint_minutes * 60:
                val_psnr = _val_psnr(model, val_images, cfg.model)
                ckpt.save(model, optimizer, step, elapsed_prev + time.monotonic() - t0)
                log.writerow([step, f"{np.mean(losses[-20:]):.6g}", f"{lr_now:.6g}",
                              f"{elapsed:.1f}", "" if val_psnr is None else f"{val_psnr:.3f}"])
                log_fh.flush()
                last_ckpt = time.monotonic()
        wall_s = elapsed_prev + time.monotonic() - t0
        if dist.is_chief:
            ckpt.save(model, optimizer, step, wall_s)
    finally:
        bar.close()
        log_fh.close()
        for s, h in old_handlers.items():
            signal.signal(s, h)

    if not dist.is_chief:
        # The chief writes the model and the report; this worker's share of the run is done.
        if interrupted:
            raise UserError(f"interrupted at step {step}; checkpoint saved in '{out}', rerun with --resume to continue")
        return {"steps": step, "finished": _finished(cfg, step, wall_s), "wall_time_s": round(wall_s, 1),
                "model_path": "the chief's --out (model.keras)", "val": None,
                "distribution": dist.describe(cfg.batch_size)}
    val_psnr = _val_psnr(model, val_images, cfg.model)
    from .models.blocks import collapse_model
    from .models.stored import save_model

    # model.keras is the plain collapsed model; the expanded form lives in the checkpoint (--init DIR reads it).
    with atomic_path(out / "model.keras") as tmp:
        save_model(collapse_model(model), tmp, cfg.model)  # the config inside: convert reads it back
    from . import __version__

    report = {
        "config": cfg.to_dict(),
        "data": {"sources": describe_sources(cfg.data), "images": len(images), "pairs": len(sampler.pairs),
                 "skipped_too_small": getattr(sampler, "skipped", [])},
        "params": int(collapse_model(model).count_params()),
        "train_params": int(model.count_params()),
        "steps": step,
        "finished": _finished(cfg, step, wall_s),
        "wall_time_s": round(wall_s, 1),
        "steps_per_s": round((step - (state["step"] if state else 0)) / max(time.monotonic() - t0, 1e-9), 3),
        "final_loss": float(np.mean(losses[-50:])) if losses else None,
        "val": {"data": describe_sources(cfg.val), "psnr_db": val_psnr} if cfg.val else None,
        "model_path": str(out / "model.keras"),
        "distribution": dist.describe(cfg.batch_size),
        "versions": {"deconv_edge": __version__, "keras_backend": keras.backend.backend(),
                     "tensorflow": _version_of("tensorflow"), "jax": _version_of("jax"), "keras": keras.__version__,
                     "numpy": np.__version__},
    }
    write_json_atomic(out / "report.json", report)
    if val_psnr is not None:
        # The end of every sitting is a point of the validation curve too.
        with open(log_path, "a", newline="") as fh:
            csv.writer(fh, lineterminator="\n").writerow(
                [step, f"{np.mean(losses[-20:]):.6g}" if losses else "", f"{float(optimizer.learning_rate):.6g}",
                 f"{wall_s:.1f}", f"{val_psnr:.3f}"])
    if interrupted:
        raise UserError(f"interrupted at step {step}; checkpoint, model and report saved in '{out}', "
                        "rerun with --resume to continue")
    return report
