"""The denoising task: the protocol's noise rule, a denoiser that starts as the identity, training and evaluation."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("keras")

from deconv_edge_core.errors import UserError  # noqa: E402
from deconv_edge_train.denoise import (  # noqa: E402
    DenoisePatchSampler,
    evaluate_denoise,
    identity_denoiser,
    keras_denoiser,
    load_grey_set,
    parse_sigmas,
)
from deconv_edge_train.models import ModelConfig, build_model, names_for  # noqa: E402
from deconv_edge_train.noise import protocol_noisy  # noqa: E402

from ..conftest import REPO, shared_path, write_images  # noqa: E402


def test_protocol_noise_is_seeded_rounded_and_clipped():
    clean = [np.full((40, 30), 250, np.uint8), np.zeros((20, 20), np.uint8)]
    a, b = protocol_noisy(clean, 25), protocol_noisy(clean, 25)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(x.dtype == np.uint8 for x in a) and a[0].max() == 255 and a[1].min() == 0
    # One draw per picture, in order: the second picture's noise follows the first one's draw.
    rng = np.random.default_rng(0)
    rng.normal(0, 25, clean[0].shape)
    expect = np.clip(np.round(rng.normal(0, 25, clean[1].shape)), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(a[1], expect)


def test_protocol_reference_numbers_on_set12():
    """PROTOCOL.md: the noisy input scores 24.67 / 20.33 / 14.76 dB on Set12."""
    set12 = shared_path("data/denoise/eval/set12")
    res = evaluate_denoise(identity_denoiser, load_grey_set([set12]), [15, 25, 50])
    assert [round(res.psnr_db[k], 2) for k in ("15", "25", "50")] == [24.67, 20.33, 14.76]


@pytest.mark.parametrize("noise_map", [False, True])
def test_denoiser_starts_as_identity_and_has_deconvolutions(noise_map):
    import keras

    for name in names_for("denoise"):
        model = build_model(ModelConfig(name=name, scale=1, noise_map=noise_map))
        assert any(isinstance(la, keras.layers.Conv2DTranspose) for la in model.layers)
        x = np.random.default_rng(0).random((1, 24, 32, 1), dtype=np.float32)
        den = keras_denoiser(model)
        np.testing.assert_allclose(den(x[0, :, :, 0], 25.0), x[0, :, :, 0], atol=1e-6)
        # Odd sizes are padded to the model's multiple and cropped back.
        assert den(x[0, :23, :31, 0], 25.0).shape == (23, 31)


def test_task_and_scale_are_checked():
    with pytest.raises(UserError, match="scale 2 is not supported for denoise"):
        build_model(ModelConfig(name="rednet", scale=2))
    with pytest.raises(UserError, match="scale 1 is not supported for super-resolution"):
        build_model(ModelConfig(name="sesr", scale=1))
    with pytest.raises(UserError, match="noise-level"):
        build_model(ModelConfig(name="sesr", scale=2, noise_map=True))
    with pytest.raises(UserError, match="sigma"):
        parse_sigmas("15,nan")


def test_sampler_noise_level_map_matches_the_noise():
    clean = [np.full((64, 64), 128, np.uint8)]
    noisy, target = DenoisePatchSampler(clean, 32, 8, sigma_range=(10, 40), seed=3).sample()
    assert noisy.shape == (8, 32, 32, 2) and target.shape == (8, 32, 32, 1)
    for k in range(8):
        sigma = noisy[k, 0, 0, 1] * 255.0
        assert 10 <= sigma <= 40 and np.all(noisy[k, ..., 1] == noisy[k, 0, 0, 1])
        measured = np.std(noisy[k, ..., 0] - target[k, ..., 0]) * 255.0
        assert abs(measured - sigma) < 0.25 * sigma + 1.0


@pytest.mark.slow
def test_train_and_evaluate_denoise_cli(tmp_path):
    data = write_images(tmp_path / "data", n=3, size_hw=(64, 64))
    out = tmp_path / "run"
    base = [sys.executable, "-m", "edge_runtime"]
    train = subprocess.run(base + ["train", "--task", "denoise", "--noise-map", "--data", str(data), "--val", str(data),
                                   "--steps", "60", "--batch", "8", "--patch", "32", "--lr", "3e-3", "--out",
                                   str(out), "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["model"]["name"] == "rednet" and report["config"]["model"]["scale"] == 1
    res = tmp_path / "res.json"
    ev = subprocess.run(base + ["evaluate", "--task", "denoise", "--model", str(out / "model.keras"), "--data",
                                str(data), "--sigma", "25", "--json", str(res)], cwd=REPO, capture_output=True,
                        text=True, timeout=300)
    assert ev.returncode == 0, ev.stderr[-2000:]
    noisy = subprocess.run(base + ["evaluate", "--task", "denoise", "--model", "noisy", "--data", str(data),
                                   "--sigma", "25"], cwd=REPO, capture_output=True, text=True, timeout=120)
    noisy_db = float(noisy.stdout.split("sigma 25: ")[1].split(" dB")[0])
    # 60 steps already beat doing nothing at sigma 25 (the noise is white; the pictures smooth).
    assert json.loads(res.read_text())["psnr_db"]["25"] > noisy_db + 1.0
    wrong = subprocess.run(base + ["train", "--task", "denoise", "--model", "sesr", "--data", str(data), "--steps",
                                   "1", "--out", str(tmp_path / "x")], cwd=REPO, capture_output=True, text=True,
                           timeout=120)
    assert wrong.returncode == 2 and "not denoise" in wrong.stderr and "Traceback" not in wrong.stderr


def test_colour_evaluation_cleans_chroma_as_the_runtime_does(tmp_path):
    """``--color``: noise in each of R, G and B. The luma-only pass leaves the chroma noise; on Y, Cr and Cb
    (the runtime's default) a model that smooths does much better; the peers use their colour variants."""
    from deconv_edge_train.denoise import PEERS, load_colour_set, on_luma, on_planes

    def blur(noisy01, sigma):  # a stand-in grey denoiser: what a trained one does to white noise, roughly
        import cv2

        return cv2.GaussianBlur(noisy01.astype(np.float32), (5, 5), 1.2)

    import cv2

    smooth = cv2.resize(np.random.default_rng(5).random((3, 4, 3)).astype(np.float32), (96, 72),
                        interpolation=cv2.INTER_CUBIC)  # a smooth colour picture: what blurring cannot hurt
    pictures = [("a.png", np.clip(smooth * 200 + 20, 0, 255).astype(np.uint8))]
    psnr = {name: evaluate_denoise(fn, pictures, [25]).psnr_db["25"]
            for name, fn in (("noisy", identity_denoiser), ("luma", on_luma(blur)), ("planes", on_planes(blur)),
                             ("nlm", PEERS["nlm"]))}
    assert psnr["luma"] < psnr["noisy"] + 2.5 and psnr["planes"] > psnr["noisy"] + 10 and psnr["nlm"] > psnr["noisy"] + 8
    data = write_images(tmp_path / "data", n=2, size_hw=(48, 64))
    assert load_colour_set([data])[0][1].shape == (48, 64, 3)
    base_cmd = [sys.executable, "-m", "edge_runtime", "evaluate", "--task", "denoise", "--color", "--data", str(data),
                "--sigma", "25", "--model"]
    noisy = subprocess.run(base_cmd + ["noisy"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert noisy.returncode == 0 and "sigma 25:" in noisy.stdout, noisy.stderr[-2000:]
    sr = subprocess.run([sys.executable, "-m", "edge_runtime", "evaluate", "--color", "--model", "bicubic", "--data",
                         str(data)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert sr.returncode == 2 and "--color is for --task denoise" in sr.stderr and "Traceback" not in sr.stderr


def test_colour_reference_numbers_on_set5():
    """The protocol's noise on Set5 in colour: the noisy input's PSNR over RGB (README, Denoising)."""
    from deconv_edge_train.denoise import load_colour_set

    res = evaluate_denoise(identity_denoiser, load_colour_set([shared_path("data/sr/eval/set5")]), [25])
    assert round(res.psnr_db["25"], 2) == 20.82


def test_camera_noise_sampler_and_its_manifest(tmp_path):
    """``--noise camera``: signal-dependent, correlated, JPEG'd noise per patch, its measured std in the map;
    the model stores what it learned, and convert's manifest says ``noise.model: camera``."""
    from deconv_edge_convert.manifest import describe_model
    from deconv_edge_train.models.stored import save_model

    rng = np.random.default_rng(6)
    clean = [(rng.random((80, 80)) * 120 + 60).astype(np.uint8) for _ in range(3)]
    noisy, target = DenoisePatchSampler(clean, 32, 16, noise_map=True, seed=2, noise="camera").sample()
    level = noisy[..., 1].reshape(16, -1)
    assert np.all(level.min(axis=1) == level.max(axis=1)) and 0 < level.max() <= 50 / 255
    measured = np.std((noisy[..., 0] - target[..., 0]).reshape(16, -1), axis=1)
    np.testing.assert_allclose(level[:, 0], np.minimum(measured, 50 / 255), atol=1e-6)
    cfg = ModelConfig(name="rednet", scale=1, noise_map=True, d=8, m=1, noise="camera")
    save_model(build_model(cfg), tmp_path / "cam.keras", cfg)
    import keras

    src = describe_model(keras.saving.load_model(tmp_path / "cam.keras", compile=False), tmp_path / "cam.keras")
    assert src.noise.model == "camera" and src.receptive_radius_px == 19
    with pytest.raises(UserError, match="for denoisers only"):
        build_model(ModelConfig(name="fsrcnn", noise="camera"))
    with pytest.raises(UserError, match="valid: awgn, camera"):
        build_model(ModelConfig(name="rednet", scale=1, noise="rain"))


def test_camera_noise_is_signal_dependent_and_correlated():
    from deconv_edge_train.noise import camera_noise

    rng = np.random.default_rng(7)
    dark, bright = (camera_noise(np.full((64, 64), v, np.float32), rng, shot=0.02, read=0.0, jpeg_quality=None)
                    for v in (0.05, 0.8))
    assert np.std(bright - 0.8) > 2.5 * np.std(dark - 0.05)  # shot noise grows with the signal
    n = camera_noise(np.full((64, 64), 0.5, np.float32), rng, shot=0.0, read=0.05, jpeg_quality=None) - 0.5
    neighbours = np.corrcoef(n[:, :-1].ravel(), n[:, 1:].ravel())[0, 1]
    assert neighbours > 0.3  # the demosaic-like blur correlates neighbouring pixels
