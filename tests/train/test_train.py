"""Training: the loss goes down, checkpoints resume, interruption leaves a usable checkpoint."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from deconv_edge_core.errors import UserError  # noqa: E402
from deconv_edge_train.models import ModelConfig  # noqa: E402
from deconv_edge_train.train import TrainConfig, learning_rate_at, train  # noqa: E402

from ..conftest import REPO, write_images  # noqa: E402

TINY = ModelConfig(name="fsrcnn-s", scale=2, d=8, s=4, m=1, activation="relu")


def _cfg(tmp_path, **kw) -> TrainConfig:
    data = write_images(tmp_path / "data", n=3, size_hw=(64, 64))
    base = dict(data=(str(data),), out=str(tmp_path / "run"), model=TINY, batch_size=8, lr_patch=12, jitter=False,
                loss="mse", learning_rate=3e-3)
    base.update(kw)
    return TrainConfig(**base)


def test_short_training_lowers_the_loss_and_writes_everything(tmp_path):
    val = write_images(tmp_path / "val", n=1, seed=9)
    cfg = _cfg(tmp_path, steps=120, val=(str(val),))
    report = train(cfg, quiet=True)
    out = tmp_path / "run"
    rows = list(csv.DictReader(open(out / "log.csv")))
    losses = [float(r["loss"]) for r in rows]
    assert losses[-1] < losses[0]
    for name in ("model.keras", "report.json", "train_config.json", "checkpoint.json"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "report.json").read_text())
    assert saved["steps"] == report["steps"] == 120
    # The residual recipe starts at bicubic: a short run must stay near it (a broken step falls far below).
    from deconv_edge_train.data import load_image_set
    from deconv_edge_train.evaluate import bicubic_predictor, evaluate_images

    bicubic = evaluate_images(bicubic_predictor(2), load_image_set([str(val)]), 2).psnr_db
    print(f"val PSNR {saved['val']['psnr_db']:.2f} dB, bicubic {bicubic:.2f} dB")
    assert saved["val"]["psnr_db"] > bicubic - 0.5 and saved["wall_time_s"] > 0
    assert saved["config"]["model"]["name"] == "fsrcnn-s"
    from deconv_edge_train.models.stored import read_config

    assert read_config(out / "model.keras") == TINY  # the identity travels inside the model file


def test_resume_continues_and_refuses_to_clobber(tmp_path):
    train(_cfg(tmp_path, steps=20), quiet=True)
    with pytest.raises(UserError, match="--resume"):
        train(_cfg(tmp_path, steps=40), quiet=True)
    report = train(_cfg(tmp_path, steps=40), resume=True, quiet=True)
    assert report["steps"] == 40
    with pytest.raises(UserError, match="--resume"):
        train(_cfg(tmp_path, steps=60, model=ModelConfig(name="fsrcnn", scale=2)), resume=True, quiet=True)


def test_resuming_a_finished_run_keeps_it(tmp_path):
    first = train(_cfg(tmp_path, steps=20), quiet=True)
    model = tmp_path / "run" / "model.keras"
    before = (model.stat().st_mtime_ns, (tmp_path / "run" / "report.json").read_text())
    again = train(_cfg(tmp_path, steps=20), resume=True, quiet=True)
    assert again == json.loads(json.dumps(first))
    assert (model.stat().st_mtime_ns, (tmp_path / "run" / "report.json").read_text()) == before


def test_init_fine_tunes_from_a_trained_model(tmp_path):
    first = train(_cfg(tmp_path, steps=30), quiet=True)
    init = first["model_path"]
    cfg = _cfg(tmp_path, steps=10, out=str(tmp_path / "ft"), init=init,
               model=ModelConfig(name="fsrcnn-s", scale=2, d=8, s=4, m=1, activation="relu", upsampler_kernel=8))
    report = train(cfg, quiet=True)
    assert report["steps"] == 10 and json.loads((tmp_path / "ft" / "train_config.json").read_text())["init"] == init
    with pytest.raises(UserError, match="does not fit"):
        train(_cfg(tmp_path, steps=5, out=str(tmp_path / "bad"), init=init,
                   model=ModelConfig(name="fsrcnn-s", scale=2, d=6, s=4, m=1, activation="relu")), quiet=True)
    with pytest.raises(UserError, match="no model file"):
        train(_cfg(tmp_path, steps=5, out=str(tmp_path / "bad2"), init=str(tmp_path / "missing.keras")), quiet=True)


def test_schedule_warms_up_then_decays():
    cfg = TrainConfig(steps=100, learning_rate=1e-3)
    lrs = [learning_rate_at(cfg, p) for p in np.linspace(0, 1, 101)]
    assert lrs[0] < lrs[2] == pytest.approx(1e-3, rel=0.05) and lrs[-1] == pytest.approx(1e-5, rel=0.01)


def test_sigint_saves_a_checkpoint_and_resume_finishes(tmp_path):
    data = write_images(tmp_path / "data", n=2, size_hw=(64, 64))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "edge_runtime", "train", "--data", str(data), "--model", "fsrcnn-s", "--d", "8",
           "--s", "4", "--m", "1", "--batch", "4", "--patch", "12", "--no-jitter", "--quiet", "--out", str(out)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(cmd + ["--minutes", "10"], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "log.csv").is_file() or os.path.getsize(out / "log.csv") < 60:  # a few steps logged
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "interrupted at step" in err and "Traceback" not in err
    step = json.loads((out / "checkpoint.json").read_text())["step"]
    assert step > 0
    done = subprocess.run(cmd + ["--steps", str(step + 5), "--resume"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "report.json").read_text())["steps"] == step + 5


def test_sittings_continue_one_schedule(tmp_path):
    """A campaign: each sitting stops on its own clock, writes a usable model, and the next resumes."""
    cfg = _cfg(tmp_path, steps=100_000, checkpoint_minutes=100.0)
    first = train(cfg, quiet=True, sitting_minutes=0.05)
    assert not first["finished"] and 0 < first["steps"] < 100_000
    assert (tmp_path / "run" / "model.keras").is_file()
    second = train(cfg, resume=True, quiet=True, sitting_minutes=0.05)
    assert not second["finished"] and second["steps"] > first["steps"]
    assert second["wall_time_s"] > first["wall_time_s"]
    # The learning rate follows the one schedule of the whole budget, not a fresh one per sitting.
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(steps) and (not steps or steps[-1] <= second["steps"])


def test_constant_phase_holds_the_peak_learning_rate():
    cfg = TrainConfig(steps=1000, learning_rate=1e-3, constant_fraction=0.5)
    assert learning_rate_at(cfg, 0.3) == learning_rate_at(cfg, 0.49) == 1e-3
    assert learning_rate_at(cfg, 0.75) < 1e-3 and learning_rate_at(cfg, 1.0) == pytest.approx(1e-5)
    with pytest.raises(UserError, match="constant-fraction"):
        TrainConfig(steps=10, constant_fraction=1.5).validate()


def test_a_tail_after_a_finished_budget_trains_on_at_the_final_learning_rate(tmp_path):
    """Adding a tail to a run whose time budget is spent resumes it; every logged step past the budget is at 1 %."""
    budget_min, tail_min = 0.05, 0.25  # the tail outlasts the first step's tracing, which counts as training time
    first = train(_cfg(tmp_path, minutes=budget_min), quiet=True)
    assert first["finished"]
    again = train(_cfg(tmp_path, minutes=budget_min, tail_minutes=tail_min), resume=True, quiet=True)
    assert again["finished"] and again["steps"] > first["steps"]
    assert again["wall_time_s"] >= (budget_min + tail_min) * 60.0
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    # log.csv keeps elapsed_s to 0.1 s: a step at 2.97 s (still in the decay) is written as 3.0.
    past = [float(r["learning_rate"]) for r in rows if float(r["elapsed_s"]) >= budget_min * 60.0 + 0.05]
    assert past
    assert all(lr == pytest.approx(3e-5) for lr in past)
    # Once both are spent, resuming changes nothing.
    assert train(_cfg(tmp_path, minutes=budget_min, tail_minutes=tail_min), resume=True, quiet=True) == \
        json.loads(json.dumps(again))


def test_a_tail_needs_a_time_budget():
    with pytest.raises(UserError, match="--tail-minutes follows a time budget"):
        TrainConfig(steps=100, tail_minutes=5.0).validate()
    with pytest.raises(UserError, match="--tail-minutes must be"):
        TrainConfig(minutes=5.0, tail_minutes=-1.0).validate()
    from deconv_edge_train.train import _finished

    cfg = TrainConfig(minutes=10.0, tail_minutes=5.0)
    assert not _finished(cfg, 0, 600.0) and not _finished(cfg, 0, 899.0) and _finished(cfg, 0, 900.0)
