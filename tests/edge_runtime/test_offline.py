"""Offline bundles (a wheelhouse for the device's platform) and accuracy checked where the model runs.

The end-to-end proof (an emulated aarch64 device installing from the bundle with no index, then checking its
accuracy) is ``make test-aarch64``; here: the pieces, on this machine, without network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from deconv_edge_core.errors import UserError
from edge_runtime.inference.default_model import MODELS_DIR
from edge_runtime.ship import platform_wheels
from edge_runtime.ship.bundle import make_bundle, verify

REPO = Path(__file__).resolve().parents[2]


def cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "edge_runtime", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


def _runnable(*names: str) -> list:
    """Shipped artifacts this venv has a runtime for (LiteRT or tflite-runtime, ONNX Runtime)."""
    from deconv_edge_core.manifest import load_manifest
    from edge_runtime.inference.backends import BACKENDS, default_backend_for, edgetpu, litert, onnxruntime  # noqa: F401

    out = []
    for name in names:
        manifest, path = load_manifest(MODELS_DIR / name)
        if BACKENDS.get(default_backend_for(manifest)).available() is None:
            out.append(path)
    return out


# ---- wheelhouse --------------------------------------------------------------------------------------------------
def test_pip_gets_every_manylinux_tag_up_to_the_devices_glibc():
    args = platform_wheels.parse_target("linux-aarch64", "3.11").pip_platform_args()
    tags = args[1::2]
    # With manylinux_2_17 alone pip silently picks ai-edge-litert 1.4.0 (2.x aarch64 wheels are manylinux_2_27).
    assert tags[0] == "manylinux_2_17_aarch64" and "manylinux_2_27_aarch64" in tags
    assert "manylinux_2_36_aarch64" in tags and "manylinux_2_37_aarch64" not in tags
    jetpack5 = platform_wheels.parse_target("linux-aarch64", "3.8", "2.31")
    assert jetpack5.abi == "cp38" and "manylinux_2_32_aarch64" not in jetpack5.pip_platform_args()


@pytest.mark.parametrize("args, message", [
    (("linux-risc", "3.11", None), "--platform 'linux-risc'"),
    (("linux-aarch64", "3", None), "--python '3'"),
    (("linux-aarch64", "3.11", "2.5"), "--glibc '2.5'"),
    ((None, "3.11", None), "add --platform"),
])
def test_bad_targets_are_one_line_errors(args, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        platform_wheels.parse_target(*args)


def test_bundle_cli_refuses_python_without_platform(tmp_path):
    r = cli("bundle", MODELS_DIR / "fsrcnn_x2_int8.tflite", "-o", tmp_path / "b.tar.gz", "--python", "3.11")
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr


def test_device_mismatch_is_explained():
    info = {"target": {"platform": "linux-aarch64", "python": "3.11", "glibc": "2.36"}}
    assert platform_wheels.check_device(info, "3.11.2", "aarch64") is None
    why = platform_wheels.check_device(info, "3.9.2", "armv7l")
    assert "--platform linux-armv7l --python 3.9" in why


def test_wheelhouse_goes_into_the_bundle_and_its_checksums(tmp_path, monkeypatch):
    fake_wheel = tmp_path / "deconv_edge-0.1.0-py3-none-any.whl"
    fake_wheel.write_bytes(b"PK\x05\x06" + bytes(18))

    def fake_download(target, requirement, dest, find_links=()):
        assert requirement.endswith(f"{fake_wheel.name}[edge]") and target.abi == "cp311"
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "numpy-2.0-cp311-cp311-manylinux_2_17_aarch64.whl").write_bytes(b"numpy")
        return sorted(dest.glob("*.whl"))

    monkeypatch.setattr(platform_wheels, "download", fake_download)
    target = platform_wheels.parse_target("linux-aarch64", "3.11")
    out, _ = make_bundle([MODELS_DIR / "fsrcnn_x2_int8.tflite"], tmp_path / "b.tar.gz", target=target,
                         wheel=fake_wheel, references=False)
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        info = json.loads(tar.extractfile("bundle.json").read())
        readme = tar.extractfile("README.md").read().decode()
    assert {f"wheels/{fake_wheel.name}", "wheels/numpy-2.0-cp311-cp311-manylinux_2_17_aarch64.whl"} <= names
    assert info["wheelhouse"]["target"]["platform"] == "linux-aarch64"
    assert info["wheelhouse"]["requirement"] == "deconv-edge[edge]" and info["wheelhouse"]["wheel"] == fake_wheel.name
    assert "--no-index" in readme
    assert verify(out).ok and verify(out).files_checked == len([n for n in names if "." in n.split("/")[-1]])


# ---- accuracy -----------------------------------------------------------------------------------------------------
def test_bundle_references_pass_here_and_a_perturbed_artifact_fails(tmp_path):
    from deconv_edge_core.fsutil import sha256_file
    from edge_runtime.agent.device_agent import SUMS_FILE, safe_extract

    arts = _runnable("fsrcnn_x2_int8.tflite", "fsrcnn-s_x2_int8.tflite")
    if len(arts) < 2:
        pytest.skip("no TFLite runtime in this venv")
    extra = _runnable("fsrcnn_x2_fp32.onnx")
    out, _ = make_bundle(arts + extra, tmp_path / "b.tar.gz")
    with tarfile.open(out) as tar:
        info = json.loads(tar.extractfile("bundle.json").read())
        assert "refs/fsrcnn_x2_int8.tflite.npz" in tar.getnames()
    if extra:  # the float reference is the fp32 export of the same source model
        assert info["references"]["fsrcnn_x2_int8.tflite"] == "float model (fsrcnn_x2_fp32.onnx)"
    r = cli("verify", "--accuracy", out, "--json", tmp_path / "acc.json")
    assert r.returncode == 0, r.stdout + r.stderr
    acc = json.loads((tmp_path / "acc.json").read_text())
    assert acc["passed"] and all(rec["vs_workstation_max"] == 0 for rec in acc["results"])

    folder = tmp_path / "unpacked"
    folder.mkdir()
    safe_extract(str(out), str(folder))
    victim = folder / "models" / "fsrcnn_x2_int8.tflite"
    shutil.copy(folder / "models" / "fsrcnn-s_x2_int8.tflite", victim)  # same I/O, other weights
    mpath = victim.with_name(victim.name + ".json")
    m = json.loads(mpath.read_text())
    m["artifact"].update(sha256=sha256_file(victim), size_bytes=victim.stat().st_size)
    mpath.write_text(json.dumps(m))
    sums = [ln.split(None, 1)[1].strip() for ln in (folder / SUMS_FILE).read_text().splitlines()]
    (folder / SUMS_FILE).write_text("".join(f"{sha256_file(folder / n)}  {n}\n" for n in sums))
    assert cli("verify", folder).returncode == 0  # every hash is valid ...
    r = cli("verify", "--accuracy", folder)
    assert r.returncode == 1 and "FAILED accuracy: fsrcnn_x2_int8.tflite" in r.stderr, r.stdout + r.stderr
    assert "accuracy ok: fsrcnn-s_x2_int8.tflite" in r.stdout and "Traceback" not in r.stderr


def test_accuracy_needs_references(tmp_path):
    arts = _runnable("fsrcnn_x2_int8.tflite")
    if not arts:
        pytest.skip("no TFLite runtime in this venv")
    out, _ = make_bundle(arts, tmp_path / "b.tar.gz", references=False)
    r = cli("verify", "--accuracy", out)
    assert r.returncode == 2 and "has no refs/" in r.stderr
    r = cli("verify", "--accuracy", arts[0])
    assert r.returncode == 2 and "needs a bundle" in r.stderr


def test_bundling_an_artifact_that_cannot_run_here_still_works(tmp_path):
    from deconv_edge_core.fsutil import sha256_file
    from deconv_edge_core.manifest import Manifest, TensorSpec

    art = tmp_path / "fake_x2.tflite"
    art.write_bytes(b"not a model" * 10)
    Manifest(format="tflite-fp32", runtime="tflite", scale=2, input=TensorSpec("lr", "float32", (1, None, None, 1)),
             output=TensorSpec("sr", "float32", (1, None, None, 1)), upsampler="deconv",
             artifact={"file": art.name, "sha256": sha256_file(art), "size_bytes": art.stat().st_size}).write(
        tmp_path / (art.name + ".json"))
    out, _ = make_bundle([art], tmp_path / "b.tar.gz")
    with tarfile.open(out) as tar:
        info = json.loads(tar.extractfile("bundle.json").read())
    assert info["references"]["fake_x2.tflite"].startswith("no references")


@pytest.mark.parametrize("kind", ["bomb", "huge-file", "wrong-shape", "missing", "pickle", "json-list"])
def test_hostile_references_are_refused_unread(tmp_path, kind):
    """A bundle is untrusted: its refs/ are size-checked before reading and shape-checked before use."""
    import io
    import zipfile

    import numpy as np

    from edge_runtime.inference import accuracy

    arts = _runnable("fsrcnn_x2_int8.tflite")
    if not arts:
        pytest.skip("no TFLite runtime in this venv")
    npz, meta = tmp_path / "r.npz", tmp_path / "r.json"
    meta.write_text(json.dumps({"workstation": {"psnr_db": 30.0, "max_abs_error": 0.1}}))
    lr = np.zeros((2, 8, 8), np.uint8)
    sr = np.zeros((2, 16, 16), np.float32)
    if kind == "bomb":  # a few KB on disk, 64 MB unpacked
        with zipfile.ZipFile(npz, "w", zipfile.ZIP_DEFLATED) as zf:
            buf = io.BytesIO()
            np.save(buf, np.zeros((4, 4096, 4096), np.uint8))
            zf.writestr("lr.npy", buf.getvalue())
            for k in ("float_sr", "ws_sr"):
                buf = io.BytesIO()
                np.save(buf, sr)
                zf.writestr(f"{k}.npy", buf.getvalue())
        assert npz.stat().st_size < accuracy.MAX_REFS_FILE_BYTES
    elif kind == "huge-file":
        npz.write_bytes(b"\0" * (accuracy.MAX_REFS_FILE_BYTES + 1))
    elif kind == "wrong-shape":
        np.savez(npz, lr=lr, float_sr=np.zeros((3, 16, 16), np.float32), ws_sr=sr)
    elif kind == "missing":
        np.savez(npz, lr=lr, float_sr=sr)
    elif kind == "pickle":
        np.savez(npz, lr=np.array([object()], dtype=object), float_sr=sr, ws_sr=sr)
    else:
        np.savez(npz, lr=lr, float_sr=sr, ws_sr=sr)
        meta.write_text("[1, 2]")
    r = accuracy.check_artifact(arts[0], npz, meta)
    assert not r.passed and r.reason, r
