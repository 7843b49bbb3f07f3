"""The training campaign: the shipped models' long runs, trained over many sittings and machines.

A sitting on the 2-core machine lasts a few hours; the recipes of the field train for 300+ epochs. So every
campaign run keeps its whole state (weights, optimizer, step, wall time, CSV log, ``train_config.json``) in
``train/campaign/<name>/``, committed to the repository whenever a sitting ends, and ``deconv-edge campaign``
resumes it where it stopped, on any machine (a GPU box too: ``KERAS_BACKEND=jax``). The learning-rate schedule
spans the run's whole budget, not one sitting.

Runs go in order: a run starts when the one before it has finished its budget, and a run may start from an
earlier one's trained body (``init_from``; its upsampler of another scale is left at bicubic, see
:func:`train.models.base.transfer_weights`).

Every run ends with a tail (:data:`TAIL_MINUTES`) at the schedule's final learning rate: the
cosine decay ends exactly at the budget, so the last hours of a run without a tail always hold the decay's
gains, and whether more training at that recipe still helps cannot be read from them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from deconv_edge_core.errors import UserError

from .models import ModelConfig
from .train import TrainConfig, _finished, _progress

CAMPAIGN_DIR = Path(__file__).resolve().parent / "campaign"
TRAIN_SETS = ("data/sr/train/t91", "data/sr/train/bsd200")


@dataclass(frozen=True)
class CampaignRun:
    """One long run of the campaign.

    Attributes:
        name: folder under ``train/campaign/`` and stem of the shipped files (``sesr_x2`` -> ``sesr_x2_int8.tflite``).
        model: what it trains.
        minutes: the budget of the learning-rate schedule (wall time of training, summed over sittings).
        tail_minutes: training after that budget at the final learning rate (see the module's docstring).
        init_from: an earlier run whose newest checkpoint (the expanded training form) starts this one.
        recipe: the rest of the :class:`TrainConfig` (batch, patch, learning rate, schedule, loss).
        val_set: the validation folder under ``../shared`` (Set5 for SR, Set12 for denoising).
    """

    name: str
    model: ModelConfig
    minutes: float
    tail_minutes: float = 0.0
    init_from: Optional[str] = None
    recipe: dict = field(default_factory=dict)
    val_set: str = "data/sr/eval/set5"

    def out(self, root: Path = CAMPAIGN_DIR) -> Path:
        return Path(root) / self.name

    def config(self, shared: Path, root: Path = CAMPAIGN_DIR) -> TrainConfig:
        """The run's :class:`TrainConfig` with data from ``shared`` (``../shared``)."""
        shared = Path(shared)
        init = None
        if self.init_from:
            init = str(Path(root) / self.init_from)
        return TrainConfig(data=tuple(str(shared / s) for s in TRAIN_SETS), val=(str(shared / self.val_set),),
                           out=str(self.out(root)), model=self.model, minutes=self.minutes,
                           tail_minutes=self.tail_minutes, init=init,
                           **{**RECIPE, **self.recipe})


#: Large LR patches (SESR and ECBSR use 48-64), peak LR held for half the budget, L1 then MSE.
RECIPE = dict(batch_size=32, lr_patch=48, learning_rate=1e-3, constant_fraction=0.5, loss="l1-mse",
              checkpoint_minutes=5.0)

#: Two hours at the final learning rate after each run's decay: the window the convergence check reads.
TAIL_MINUTES = 120.0

RUNS: tuple[CampaignRun, ...] = (
    CampaignRun("sesr_x2", ModelConfig(name="sesr", scale=2, activation="relu"), minutes=600,
                tail_minutes=TAIL_MINUTES),
    # One denoiser for every sigma (noise-level map input), trained on the SR training pictures in grey.
    CampaignRun("rednet_denoise", ModelConfig(name="rednet", scale=1, noise_map=True), minutes=240,
                tail_minutes=TAIL_MINUTES, recipe={"lr_patch": 64, "loss": "l1-mse"},
                val_set="data/denoise/eval/set12"),
    CampaignRun("sesr_x3", ModelConfig(name="sesr", scale=3, activation="relu", upsampler_kernel=11),
                minutes=300, tail_minutes=TAIL_MINUTES, init_from="sesr_x2", recipe={"lr_patch": 32}),
    CampaignRun("sesr_x4", ModelConfig(name="sesr", scale=4, activation="relu", upsampler_kernel=16),
                minutes=300, tail_minutes=TAIL_MINUTES, init_from="sesr_x2", recipe={"lr_patch": 24}),
    # The fast x2 model (live 640x480): half the body, from scratch (its body has other layers than sesr's).
    CampaignRun("sesr-s_x2", ModelConfig(name="sesr-s", scale=2, activation="relu"), minutes=240,
                tail_minutes=TAIL_MINUTES),
)


@dataclass(frozen=True)
class RunState:
    """Where a run stands, from its committed checkpoint pointer."""

    run: CampaignRun
    step: int
    elapsed_s: float
    progress: float
    finished: bool


def state_of(run: CampaignRun, root: Path = CAMPAIGN_DIR) -> RunState:
    """The run's progress (0 when it has not started)."""
    pointer = run.out(root) / "checkpoint.json"
    step, elapsed = 0, 0.0
    if pointer.is_file():
        try:
            data = json.loads(pointer.read_text())
            step, elapsed = int(data["step"]), float(data["elapsed_s"])
        except (ValueError, KeyError, TypeError):
            raise UserError(f"campaign checkpoint '{pointer}' is damaged; restore it from git") from None
    cfg = TrainConfig(minutes=run.minutes, tail_minutes=run.tail_minutes)
    return RunState(run, step, elapsed, _progress(cfg, step, elapsed), _finished(cfg, step, elapsed))


def run_sitting(shared: Path, sitting_minutes: float, root: Path = CAMPAIGN_DIR, quiet: bool = True,
                runs: tuple[CampaignRun, ...] = RUNS) -> list[dict]:
    """Train the unfinished runs in order for at most ``sitting_minutes`` in all; returns their reports."""
    import time

    from .train import train

    if not (Path(shared) / TRAIN_SETS[0]).is_dir():
        raise UserError(f"the campaign needs the training data in '{Path(shared) / 'data/sr'}' (set SHARED=DIR)")
    deadline = time.monotonic() + sitting_minutes * 60.0
    reports = []
    for run in runs:
        left_min = (deadline - time.monotonic()) / 60.0
        if left_min <= 0.01:
            break
        if state_of(run, root).finished:
            continue
        cfg = run.config(shared, root)
        if cfg.init and not (Path(cfg.init) / "checkpoint.json").is_file():
            # Its starting point is still training (or was never written): the order is the order.
            break
        started = any(run.out(root).joinpath(n).is_file() for n in ("checkpoint.json", "train_config.json"))
        if started:
            cfg = replace(cfg, init=None)
        reports.append(train(cfg, resume=started, quiet=quiet, sitting_minutes=left_min))
    return reports
