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
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from edge_runtime.errors import UserError
from edge_runtime.fsutil import atomic_path, write_json_atomic

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
        val: optional folders evaluated at every checkpoint and at the end.
        batch_size, lr_patch: patches per step and low-resolution patch side.
        learning_rate: peak Adam learning rate (cosine decay to 1% after a short warm-up).
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
    val: tuple = ()
    batch_size: int = 32
    lr_patch: int = 32
    learning_rate: float = 1e-3
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
        if self.loss not in LOSSES:
            raise UserError(f"unknown loss '{self.loss}'; valid: {', '.join(LOSSES)}")
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


def learning_rate_at(cfg: TrainConfig, progress: float) -> float:
    """2 % linear warm-up, then cosine decay from the peak to 1 % of it."""
    warm = 0.02
    if progress < warm:
        return cfg.learning_rate * max(progress / warm, 0.05)
    t = (progress - warm) / (1 - warm)
    return cfg.learning_rate * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def l1_weight_at(cfg: TrainConfig, progress: float) -> float:
    if cfg.loss == "l1":
        return 1.0
    if cfg.loss == "mse":
        return 0.0
    return 1.0 if progress < 0.7 else 0.0


class _Checkpointer:
    """Complete checkpoints in ``ckpt-<step>/``; ``checkpoint.json`` names the newest (atomic switch)."""

    def __init__(self, out: Path, keep: int = 2):
        self.out, self.keep = out, keep
        self.pointer = out / "checkpoint.json"

    def latest(self) -> Optional[dict]:
        if not self.pointer.is_file():
            return None
        try:
            state = json.loads(self.pointer.read_text())
            if (self.out / state["dir"] / "model.weights.h5").is_file():
                return state
        except (ValueError, KeyError):
            pass
        raise UserError(f"checkpoint in '{self.out}' is damaged; delete {self.pointer} to start over")

    def save(self, model, optimizer, step: int, elapsed_s: float) -> None:
        name = f"ckpt-{step:08d}"
        final = self.out / name
        tmp = self.out / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model.save_weights(str(tmp / "model.weights.h5"))
        np.savez(tmp / "optimizer.npz", *[np.asarray(v) for v in optimizer.variables])
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        write_json_atomic(self.pointer, {"dir": name, "step": step, "elapsed_s": elapsed_s})
        old = sorted(p for p in self.out.glob("ckpt-*") if p.is_dir() and p.name != name)
        for p in old[: max(0, len(old) - (self.keep - 1))]:
            shutil.rmtree(p, ignore_errors=True)

    def restore(self, model, optimizer, state: dict) -> None:
        ckpt = self.out / state["dir"]
        model.load_weights(str(ckpt / "model.weights.h5"))
        optimizer.build(model.trainable_variables)
        with np.load(ckpt / "optimizer.npz") as arrays:
            values = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
        if len(values) != len(optimizer.variables):
            raise UserError(f"optimizer state in '{ckpt}' does not match the model; start a new --out")
        for var, val in zip(optimizer.variables, values):
            var.assign(val)


def _val_psnr(model, images, scale: int) -> Optional[float]:
    if not images:
        return None
    from .evaluate import evaluate_images, keras_predictor

    return evaluate_images(keras_predictor(model), images, scale).psnr_db


def _init_from(model, cfg: TrainConfig) -> None:
    """Start from the weights of ``cfg.init`` (fine-tuning)."""
    import keras

    from .models.base import transfer_weights

    try:
        src = keras.models.load_model(cfg.init, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - any load failure is the user's file
        raise UserError(f"--init: cannot load '{cfg.init}' as a Keras model ({type(exc).__name__}); "
                        "give a .keras file written by 'deconv-edge train'") from None
    skipped = transfer_weights(src, model, cfg.model.scale)
    if skipped:
        raise UserError(f"--init: '{cfg.init}' does not fit {cfg.model.name} x{cfg.model.scale} "
                        f"(layers {', '.join(skipped)} differ); init from a model of the same shape")


def train(cfg: TrainConfig, resume: bool = False, quiet: bool = False) -> dict:
    """Run (or resume) a training and return its report.

    Raises:
        UserError: bad configuration or data, a run already in ``out`` without ``resume``, or a
            ``resume`` whose configuration differs from the stored one.
    """
    cfg.validate()
    out = Path(cfg.out)
    ckpt = _Checkpointer(out)
    stored_cfg = out / "train_config.json"
    state = None
    if stored_cfg.is_file() or ckpt.pointer.is_file():
        if not resume:
            raise UserError(f"'{out}' already holds a training run; pass --resume to continue it or pick a new --out")
        state = ckpt.latest()
        if stored_cfg.is_file():
            prev = TrainConfig.from_dict(json.loads(stored_cfg.read_text()))
            if prev.model != cfg.model:
                raise UserError(f"--resume: '{out}' trains {prev.model}, not {cfg.model}")
    if state and _progress(cfg, int(state["step"]), float(state["elapsed_s"])) >= 1.0 \
            and (out / "report.json").is_file() and (out / "model.keras").is_file():
        # Already finished within this budget (e.g. `make models` run again): nothing to train, and its
        # model and report stay as they are rather than being rewritten by an empty session.
        return json.loads((out / "report.json").read_text())
    if cfg.init and not state and not Path(cfg.init).is_file():
        raise UserError(f"--init: no model file '{cfg.init}'; give a .keras model written by 'deconv-edge train'")
    images = load_image_set(cfg.data)
    val_images = load_image_set(cfg.val) if cfg.val else []
    sampler = PatchSampler(images, cfg.model.scale, cfg.lr_patch, cfg.batch_size,
                           jitter=DEFAULT_JITTER if cfg.jitter else (1.0,),
                           seed=cfg.seed + (state["step"] if state else 0))

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(cfg.seed)
    model = build_model(cfg.model)
    optimizer = keras.optimizers.Adam(learning_rate=cfg.learning_rate)
    step, elapsed_prev = 0, 0.0
    if state:
        ckpt.restore(model, optimizer, state)
        step, elapsed_prev = int(state["step"]), float(state["elapsed_s"])
    elif cfg.init:
        _init_from(model, cfg)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(stored_cfg, cfg.to_dict())

    l1_w = tf.Variable(1.0, trainable=False, dtype=tf.float32)

    @tf.function(reduce_retracing=True)
    def train_step(lr, hr):
        with tf.GradientTape() as tape:
            diff = model(lr, training=True) - hr
            loss = l1_w * tf.reduce_mean(tf.abs(diff)) + (1.0 - l1_w) * tf.reduce_mean(tf.square(diff))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    log_path = out / "log.csv"
    new_log = not log_path.is_file()
    log_fh = open(log_path, "a", newline="")
    log = csv.writer(log_fh, lineterminator="\n")
    if new_log:
        log.writerow(["step", "loss", "learning_rate", "elapsed_s", "val_psnr_db"])

    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=step, unit="step", disable=quiet, dynamic_ncols=True,
               desc=f"{cfg.model.name} x{cfg.model.scale}")
    interrupted: list[int] = []

    def _on_signal(signum, _frame):  # finish the current step, checkpoint, then stop
        interrupted.append(signum)

    old_handlers = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    t0 = time.monotonic()
    last_ckpt = t0
    losses: list[float] = []
    val_psnr = None
    try:
        it = iter(sampler.dataset())
        while True:
            elapsed = elapsed_prev + time.monotonic() - t0
            prog = _progress(cfg, step, elapsed)
            if prog >= 1.0 or interrupted:
                break
            optimizer.learning_rate.assign(learning_rate_at(cfg, prog))
            l1_w.assign(l1_weight_at(cfg, prog))
            lr_b, hr_b = next(it)
            loss = float(train_step(lr_b, hr_b))
            if not math.isfinite(loss):
                raise UserError(f"loss became {loss} at step {step}; lower --lr (now {cfg.learning_rate})")
            step += 1
            losses.append(loss)
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.5f}")
                log.writerow([step, f"{np.mean(losses[-20:]):.6g}", f"{float(optimizer.learning_rate):.6g}",
                              f"{elapsed:.1f}", ""])
                log_fh.flush()
            if time.monotonic() - last_ckpt >= cfg.checkpoint_minutes * 60:
                val_psnr = _val_psnr(model, val_images, cfg.model.scale)
                ckpt.save(model, optimizer, step, elapsed_prev + time.monotonic() - t0)
                log.writerow([step, f"{np.mean(losses[-20:]):.6g}", f"{float(optimizer.learning_rate):.6g}",
                              f"{elapsed:.1f}", "" if val_psnr is None else f"{val_psnr:.3f}"])
                log_fh.flush()
                last_ckpt = time.monotonic()
        wall_s = elapsed_prev + time.monotonic() - t0
        ckpt.save(model, optimizer, step, wall_s)
        if interrupted:
            raise UserError(f"interrupted at step {step}; checkpoint saved in '{out}', rerun with --resume to continue")
    finally:
        bar.close()
        log_fh.close()
        for s, h in old_handlers.items():
            signal.signal(s, h)

    val_psnr = _val_psnr(model, val_images, cfg.model.scale)
    with atomic_path(out / "model.keras") as tmp:
        model.save(str(tmp))
    from . import __version__

    report = {
        "config": cfg.to_dict(),
        "data": {"sources": describe_sources(cfg.data), "images": len(images), "pairs": len(sampler.pairs),
                 "skipped_too_small": sampler.skipped},
        "params": int(model.count_params()),
        "steps": step,
        "wall_time_s": round(wall_s, 1),
        "steps_per_s": round((step - (state["step"] if state else 0)) / max(time.monotonic() - t0, 1e-9), 3),
        "final_loss": float(np.mean(losses[-50:])) if losses else None,
        "val": {"data": describe_sources(cfg.val), "psnr_db": val_psnr} if cfg.val else None,
        "model_path": str(out / "model.keras"),
        "versions": {"deconv_edge": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
                     "numpy": np.__version__},
    }
    write_json_atomic(out / "report.json", report)
    return report
