"""Shipped models by name (``deconv-edge models``, ``--model x3``, ``Enhancer("fast")``), threads by default,
and ``bench --pick`` choosing a model's file per device (real files, real subprocesses)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from deconv_edge_core.errors import UserError
from edge_runtime.inference.catalog import ALIASES, resolve, shipped_models
from edge_runtime.inference.default_model import MODELS_DIR

from .conftest import REPO, cli, cli_env, one_error_line

pytestmark = pytest.mark.skipif(not (MODELS_DIR / "sesr_x3_int8.tflite.json").is_file(),
                                reason="needs the shipped models in edge_runtime/models/")


def test_models_lists_every_shipped_manifest():
    r = cli("models", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    manifests = sorted(p.name[:-5] for p in MODELS_DIR.glob("*.json"))
    assert sorted(row["file"] for row in rows) == manifests
    x3 = {row["file"]: row for row in rows}["sesr_x3_int8.tflite"]
    on_disk = json.loads((MODELS_DIR / "sesr_x3_int8.tflite.json").read_text())
    assert (x3["model"], x3["scale"], x3["format"], x3["task"]) == ("sesr_x3", 3, "tflite-int8", "super-resolution")
    assert x3["psnr_db"] == on_disk["accuracy"]["psnr_db"] and x3["size_bytes"] == on_disk["artifact"]["size_bytes"]
    assert x3["aliases"] == ["x3"]
    table = cli("models")
    assert table.returncode == 0 and "fsrcnn-s_x2_int8.tflite" in table.stdout and "fast = fsrcnn-s_x2" in table.stdout


@pytest.mark.parametrize("name,expected", [
    ("x3", "sesr_x3_int8.tflite"), ("fast", "fsrcnn-s_x2_int8.tflite"), ("fsrcnn_x3", "fsrcnn_x3_int8.tflite"),
    ("fsrcnn_x3_int8", "fsrcnn_x3_int8.tflite"), ("fsrcnn_x3_int8.onnx", "fsrcnn_x3_int8.onnx"),
    ("x4", "sesr_x4_int8.tflite"), ("fsrcnn_x4", "fsrcnn_x4_int8.tflite"), (None, "sesr_x2_int8.tflite"),
    ("default", "sesr_x2_int8.tflite"), ("x2", "sesr_x2_int8.tflite"), ("fsrcnn_x2", "fsrcnn_x2_int8.tflite"),
])
def test_name_forms_resolve(name, expected):
    assert resolve(name).path == MODELS_DIR / expected


def test_enhancer_by_name_from_another_folder(tmp_path):
    code = ("from edge_runtime import Enhancer\nimport numpy as np\ne = Enhancer('x3')\n"
            "out = e(np.full((20, 30, 3), 90, np.uint8))\nprint(out.shape, e.describe()['model'])")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["(60,", "90,", "3)", "sesr_x3_int8.tflite"]


def test_unknown_name_lists_the_valid_ones(tmp_path):
    pic = tmp_path / "a.png"
    cv2.imwrite(str(pic), np.zeros((8, 8, 3), np.uint8))
    r = cli("enhance", pic, "-o", tmp_path / "out.png", "--model", "x5")
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    shipped = shipped_models()
    # Every alias of a shipped model is offered (an alias whose model is not shipped here is not).
    assert "unknown model 'x5'" in line and "fsrcnn_x3" in line
    assert all(a in line for a in ALIASES if ALIASES.get(a).model in shipped)
    with pytest.raises(UserError, match="does not exist"):
        resolve("nowhere/model.tflite")


def test_a_new_family_is_listed_and_resolves_from_its_manifest(tmp_path):
    """Names come from the manifests: a model trained as 'newnet' appears as newnet_x2 with no code change."""
    src = json.loads((MODELS_DIR / "fsrcnn-s_x2_int8.tflite.json").read_text())
    src["source_model"]["config"]["name"] = "newnet"
    src["source_model"]["file"] = "newnet_x2.keras"
    src["artifact"]["file"] = "newnet_x2_int8.tflite"
    shutil.copy(MODELS_DIR / "fsrcnn-s_x2_int8.tflite", tmp_path / "newnet_x2_int8.tflite")
    (tmp_path / "newnet_x2_int8.tflite.json").write_text(json.dumps(src))
    models = shipped_models(tmp_path)
    assert list(models) == ["newnet_x2"] and models["newnet_x2"].aliases == ()
    assert resolve("newnet_x2", tmp_path).path == tmp_path / "newnet_x2_int8.tflite"
    assert resolve("newnet_x2_int8", tmp_path).model == "newnet_x2"
    with pytest.raises(UserError, match="valid: newnet_x2"):
        resolve("x3", tmp_path)  # the alias's model is not shipped there


def test_threads_default_to_the_usable_cores():
    code = ("import os\nos.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n"
            "from edge_runtime import Enhancer\nd = Enhancer('fast').describe()\nprint(d['threads'], d['threads_from'])")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=cli_env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("1 usable cores (1,"), r.stdout
    from edge_runtime import Enhancer
    from edge_runtime.inference.config import RuntimeConfig

    assert Enhancer("fast").describe()["threads"] == len(os.sched_getaffinity(0))
    assert Enhancer("fast", RuntimeConfig(threads=1)).describe()["threads_from"] == "as given"


def test_grey_picture_gives_grey_output(tmp_path):
    grey = (np.add.outer(np.arange(30), np.arange(40)) * 3 % 256).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    cv2.imwrite(str(tmp_path / "c.png"), cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    r = cli("enhance", tmp_path / "g.png", tmp_path / "c.png", "-o", tmp_path / "out", "--model", "fast")
    assert r.returncode == 0, r.stderr
    out = cv2.imread(str(tmp_path / "out" / "g_x2.png"), cv2.IMREAD_UNCHANGED)
    colour = cv2.imread(str(tmp_path / "out" / "c_x2.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape == (60, 80) and colour.shape == (60, 80, 3)
    for c in range(3):  # the same picture, to rounding
        assert np.abs(out.astype(int) - colour[:, :, c]).max() <= 1


def _runnable(*names: str) -> set:
    from deconv_edge_core.manifest import load_manifest
    from edge_runtime.inference.backends import BACKENDS, default_backend_for, edgetpu, litert, onnxruntime  # noqa: F401
    from edge_runtime.inference.default_model import MODELS_DIR

    return {n for n in names
            if BACKENDS.get(default_backend_for(load_manifest(MODELS_DIR / n)[0])).available() is None}


def test_bench_pick_caches_the_fastest_file_and_names_follow_it(tmp_path):
    env = dict(cli_env(), DECONV_EDGE_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-m", "edge_runtime", "bench", "--pick", "x2", "--runs", "2", "--warmup", "0",
                        "--input-size", "24x32", "--quiet"], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "cache" / "picks.json").read_text())
    (key, device), = data["devices"].items()
    entry = device["models"]["sesr_x2"]
    # Every x2 file this venv has a runtime for (the legacy stack has no ONNX Runtime: only the .tflite).
    assert set(entry["all_p50_ms"]) == _runnable("sesr_x2_int8.tflite", "sesr_x2_int8.onnx", "sesr_x2_fp32.onnx")
    assert entry["file"] == min(entry["all_p50_ms"], key=entry["all_p50_ms"].get)
    assert f"sesr_x2: {entry['file']}" in r.stdout

    def run_as(name: str) -> str:
        code = f"from edge_runtime import Enhancer\nd = Enhancer({name!r}).describe()\nprint(d['model'], '|', d['chosen_by'])"
        p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, p.stderr
        return p.stdout.strip()

    # Say the fp32 ONNX file won here: every name of the model follows the cache, explicit files do not.
    if "sesr_x2_fp32.onnx" not in entry["all_p50_ms"]:
        pytest.skip("the pick was cached; the rest pretends the fp32 ONNX file won, which needs ONNX Runtime")
    onnx = json.loads((MODELS_DIR / "sesr_x2_fp32.onnx.json").read_text())["artifact"]["sha256"]
    entry.update(file="sesr_x2_fp32.onnx", sha256=onnx)
    (tmp_path / "cache" / "picks.json").write_text(json.dumps(data))
    for name in ("x2", "default", "sesr_x2", None):
        assert run_as(name).startswith("sesr_x2_fp32.onnx | fastest measured here"), name
    assert run_as("sesr_x2_int8").startswith("sesr_x2_int8.tflite | named file")
    doctor = subprocess.run([sys.executable, "-m", "edge_runtime", "doctor"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert "model sesr_x2 (default, x2)  sesr_x2_fp32.onnx: fastest measured here" in doctor.stdout
    # A file that changed since the measurement (sha256), or another device, is not trusted.
    entry.update(sha256="0" * 64)
    (tmp_path / "cache" / "picks.json").write_text(json.dumps(data))
    assert run_as("x2").startswith("sesr_x2_int8.tflite | format preference")
    entry.update(sha256=onnx)
    data["devices"] = {"another-device": device}
    (tmp_path / "cache" / "picks.json").write_text(json.dumps(data))
    assert run_as("x2").startswith("sesr_x2_int8.tflite | format preference")


def test_bench_takes_relative_paths_and_names_from_any_folder(tmp_path):
    """Workers run elsewhere: a relative artifact path (and a name) must still reach them."""
    from .conftest import copy_artifact

    copy_artifact(MODELS_DIR / "fsrcnn-s_x2_int8.tflite", tmp_path / "m")
    r = subprocess.run([sys.executable, "-m", "edge_runtime", "bench", "m/fsrcnn-s_x2_int8.tflite", "fast",
                        "--runs", "1", "--warmup", "0", "--input-size", "16x16", "--threads", "1", "--quiet",
                        "--json", "b.json"], cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    results = json.loads((tmp_path / "b.json").read_text())["results"]
    assert [x["error"] for x in results] == [None, None] and all(x["frame"]["p50_ms"] > 0 for x in results)
