"""Fixtures for the runtime tests: small artifacts, test videos, a CLI runner.

Artifacts come from ``deconv_edge_convert.api.export_one`` when TensorFlow is installed (a tiny FSRCNN-s that starts
near bicubic interpolation); in the runtime-only environment the tests that need them skip, and the tests that use the
shipped models in ``edge_runtime/models/`` run.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_runtime.inference.default_model import MODELS_DIR

REPO = Path(__file__).resolve().parents[2]
#: Small fixed tile of the fixed-shape test artifact (low-resolution pixels).
FIXED_TILE = (32, 48)
#: Receptive radius of the test model (d=8, s=4, m=1): 2 + 1 + 2 = 5; the halo must cover it.
TEST_HALO = 6


@dataclass(frozen=True)
class Artifacts:
    dynamic: Path          # tflite fp32, (1, None, None, 1)
    fixed: Path            # tflite fp32, (None, 32, 48, 1): tiles, batched
    int8: Path             # tflite int8, (1, 32, 48, 1)
    onnx: Path             # onnx fp32, (1, None, None, 1)


@pytest.fixture(scope="session")
def tf_artifacts(tmp_path_factory) -> Artifacts:
    """Small artifacts of one untrained FSRCNN-s (d=8, s=4, m=1), exported by ``deconv_edge_convert.api.export_one``."""
    pytest.importorskip("tensorflow", reason="making test artifacts needs TensorFlow (the [train] extra)")
    import keras

    from deconv_edge_convert.api import ExportConfig, export_one
    from deconv_edge_train.models import ModelConfig, build_model

    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(name="fsrcnn-s", scale=2, d=8, s=4, m=1))
    # Untrained, the model is exactly bicubic; small random feature weights make tiling errors visible.
    up = model.get_layer("upsample")
    kernel, bias = up.get_weights()
    kernel[:, :, 0, :-1] = np.random.default_rng(0).normal(0, 0.003, kernel[:, :, 0, :-1].shape)
    up.set_weights([kernel, bias])
    out = tmp_path_factory.mktemp("artifacts")
    return Artifacts(
        dynamic=export_one(model, "tflite-fp32", out / "dynamic", ExportConfig(batch=1)),
        fixed=export_one(model, "tflite-fp32", out / "fixed", ExportConfig(input_size_hw=FIXED_TILE, batch=None)),
        int8=export_one(model, "tflite-int8", out / "int8", ExportConfig(input_size_hw=FIXED_TILE, calib_samples=8)),
        onnx=export_one(model, "onnx-fp32", out / "onnx", ExportConfig(batch=1)),
    )


def shipped_models() -> list[Path]:
    """Artifacts shipped in ``edge_runtime/models`` (``DECONV_EDGE_TEST_MODELS`` points elsewhere)."""
    folder = Path(os.environ.get("DECONV_EDGE_TEST_MODELS") or MODELS_DIR)
    return sorted(p.with_suffix("") for p in folder.glob("*.json") if p.with_suffix("").is_file())


@pytest.fixture(scope="session")
def any_model(request) -> Path:
    """A model to run: a shipped one if any (works without TensorFlow), else a TensorFlow-made one."""
    if shipped_models():
        from edge_runtime.inference.default_model import default_model

        # The default pick (int8 TFLite with an installed backend), not e.g. the Edge TPU file, whose CPU
        # fallback adds a warning line to every command.
        return default_model(Path(os.environ.get("DECONV_EDGE_TEST_MODELS") or MODELS_DIR))
    if importlib.util.find_spec("tensorflow") is not None:
        return request.getfixturevalue("tf_artifacts").dynamic
    pytest.skip("no model shipped in edge_runtime/models/ yet and no TensorFlow to make one")


def synthetic_frame(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A colourful BGR test picture with edges, gradients and texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[..., 0] = 128 + 100 * np.sin(xx / 5.0 + seed)
    img[..., 1] = 255 * xx / max(w - 1, 1)
    img[..., 2] = 255 * yy / max(h - 1, 1)
    img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    cv2.rectangle(img, (w // 4, h // 4), (w // 2, h // 2), (255, 255, 255), -1)
    cv2.circle(img, (3 * w // 4, h // 2), max(2, h // 5), (0, 0, 0), 2)
    return img


@pytest.fixture()
def make_video(tmp_path):
    """Write a small test video; returns its path."""

    def make(name: str = "in.avi", frames: int = 6, w: int = 64, h: int = 48, fps: float = 10.0) -> Path:
        path = tmp_path / name
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
        writer = cv2.VideoWriter(str(path), fourcc, fps, (w, h))
        assert writer.isOpened()
        for i in range(frames):
            writer.write(synthetic_frame(w, h, seed=i))
        writer.release()
        return path

    return make


def video_info(path: Path) -> tuple[int, int, int]:
    """(frames decoded, width, height) of a video, read back with OpenCV."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"cannot open {path}"
    n, size = 0, (0, 0)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n += 1
        size = (frame.shape[1], frame.shape[0])
    cap.release()
    return n, size[0], size[1]


def cli_env() -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def cli(*args: str, timeout: float = 120, cwd: Path = REPO, **kw) -> subprocess.CompletedProcess:
    """Run ``deconv-edge ARGS`` in a fresh interpreter (as a user would), in ``cwd`` (default: the checkout)."""
    return subprocess.run([sys.executable, "-m", "edge_runtime", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=cli_env(), **kw)


def cli_popen(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge_runtime", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=cli_env())


def copy_artifact(artifact: Path, folder: Path) -> Path:
    """Copy an artifact and its manifest into ``folder``; returns the new artifact path."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(artifact, folder / artifact.name)
    shutil.copy(artifact.with_name(artifact.name + ".json"), folder / (artifact.name + ".json"))
    return folder / artifact.name



class LineReader:
    """Collects a subprocess' stdout lines in a thread; :meth:`wait_for` a pattern with a deadline."""

    def __init__(self, proc: subprocess.Popen):
        import threading

        self.proc, self.lines = proc, []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float = 60.0):
        import re
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                m = re.search(pattern, line)
                if m:
                    return m
            if self.proc.poll() is not None and not self._thread.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in {timeout} s; got: {''.join(self.lines)}"
                             f"{self.proc.stderr.read() if self.proc.poll() is not None else ''}")

    def text(self) -> str:
        self._thread.join(timeout=10)
        return "".join(self.lines)


def one_error_line(stderr: str) -> str:
    """The user-facing error of a failed run: exactly one non-empty ``error:`` line (runtime logs aside)."""
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not _is_runtime_log(ln)]
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one 'error:' line, got:\n{stderr}"
    return lines[0]


def _is_runtime_log(line: str) -> bool:
    # LiteRT announces its CPU delegate on stderr by itself; that is not our message.
    return line.startswith("INFO: Created TensorFlow Lite XNNPACK delegate")


@pytest.fixture(scope="session")
def tools():
    """The helpers above as one object (for tests that prefer a fixture to ``from .conftest import``)."""
    from types import SimpleNamespace

    return SimpleNamespace(cli=cli, cli_popen=cli_popen, synthetic_frame=synthetic_frame, video_info=video_info,
                           copy_artifact=copy_artifact, shipped_models=shipped_models, one_error_line=one_error_line,
                           LineReader=LineReader, FIXED_TILE=FIXED_TILE, TEST_HALO=TEST_HALO, REPO=REPO)
