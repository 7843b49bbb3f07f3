"""The campaign: runs resume in order across sittings, and a later run starts from an earlier one's body."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("keras")

from deconv_edge_train.campaign import RUNS, CampaignRun, run_sitting, state_of  # noqa: E402
from deconv_edge_train.models import ModelConfig  # noqa: E402

from ..conftest import write_images  # noqa: E402

TINY = dict(batch_size=4, lr_patch=12, checkpoint_minutes=100.0, learning_rate=3e-3)


def _shared(tmp_path):
    shared = tmp_path / "shared"
    for sub in ("data/sr/train/t91", "data/sr/train/bsd200", "data/sr/eval/set5"):
        write_images(shared / sub, n=2, size_hw=(64, 64))
    return shared


def test_runs_go_in_order_and_resume(tmp_path):
    """Budgets, not the sitting's clock, end these runs, so the test holds on a loaded machine."""
    import dataclasses

    import keras

    shared, root = _shared(tmp_path), tmp_path / "campaign"
    x2 = CampaignRun("a_x2", ModelConfig(name="sesr", scale=2, d=8, s=4, m=1, activation="relu"), minutes=0.02,
                     recipe=TINY)
    x3 = CampaignRun("a_x3", ModelConfig(name="sesr", scale=3, d=8, s=4, m=1, activation="relu", upsampler_kernel=11),
                     minutes=0.02, init_from="a_x2", recipe=TINY)
    reports = run_sitting(shared, 30.0, root=root, runs=(x3, x2)[::-1])
    assert [r["config"]["model"]["scale"] for r in reports] == [2, 3]
    assert all(r["finished"] for r in reports)
    assert state_of(x2, root).finished and state_of(x3, root).finished
    # x3 started from the x2 body (its checkpoint, the expanded training form), its own upsampler at bicubic x3.
    stored = json.loads((root / "a_x3" / "train_config.json").read_text())
    assert stored["init"].endswith("a_x2")
    # A larger budget for x3: the next sitting resumes x3 alone (x2 is done) from its checkpoint.
    done = state_of(x3, root)
    step = done.step
    x3_more = dataclasses.replace(x3, minutes=done.elapsed_s / 60.0 + 0.03)
    again = run_sitting(shared, 30.0, root=root, runs=(x2, x3_more))
    assert [r["config"]["model"]["scale"] for r in again] == [3] and again[0]["steps"] > step
    plain = keras.saving.load_model(root / "a_x3" / "model.keras", safe_mode=True, compile=False)
    out = plain(np.zeros((1, 8, 8, 1), np.float32))
    assert tuple(out.shape) == (1, 24, 24, 1)


def test_body_transfers_across_scales_but_the_upsampler_stays_bicubic():
    from deconv_edge_train.models import build_model
    from deconv_edge_train.models.base import UPSAMPLER_LAYER, transfer_weights

    src = build_model(ModelConfig(name="sesr", scale=2, d=8, s=4, m=1))
    rng = np.random.default_rng(0)
    src.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in src.get_weights()])
    dst = build_model(ModelConfig(name="sesr", scale=3, d=8, s=4, m=1, upsampler_kernel=11))
    fresh = [w.copy() for w in dst.get_layer(UPSAMPLER_LAYER).get_weights()]
    assert transfer_weights(src, dst, 3) == []
    np.testing.assert_array_equal(dst.get_layer("map_1").get_weights()[0], src.get_layer("map_1").get_weights()[0])
    for a, b in zip(dst.get_layer(UPSAMPLER_LAYER).get_weights(), fresh):
        np.testing.assert_array_equal(a, b)


def test_committed_campaign_state_is_readable():
    """What the repository holds resumes: every started run has a sound pointer and its checkpoint files."""
    for run in RUNS:
        st = state_of(run)
        if st.step:
            ckpt = json.loads((run.out() / "checkpoint.json").read_text())
            assert any((run.out() / ckpt["dir"] / n).is_file() for n in ("weights.npz", "model.weights.h5"))
            assert (run.out() / ckpt["dir"] / "optimizer.npz").is_file()


def test_every_run_ends_with_a_tail_the_convergence_check_can_read():
    """The check reads the last 2 h; a tail shorter than that would still hold the decay's gains."""
    from benchmarks.campaign import PLATEAU_WINDOW_H

    for run in RUNS:
        assert run.tail_minutes >= PLATEAU_WINDOW_H * 60.0, run.name
