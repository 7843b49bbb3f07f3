"""The runtime never needs TensorFlow: no import in its source, none pulled in at run time.

``tests/runtime_only.sh`` runs this folder in a virtual environment without TensorFlow
(``DECONV_EDGE_RUNTIME_ONLY=1``), where the last test also checks that TensorFlow really is absent.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from .conftest import REPO, cli_env

HEAVY = ("tensorflow", "keras", "tf2onnx")


def test_edge_runtime_source_has_no_tensorflow_import():
    pattern = re.compile(r"^\s*(import|from)\s+(tensorflow|keras|tf2onnx)\b", re.M)
    hits = [str(p.relative_to(REPO)) for p in (REPO / "edge_runtime").rglob("*.py") if pattern.search(p.read_text())]
    assert hits == []


def test_runtime_commands_do_not_load_tensorflow():
    code = """
import sys
from edge_runtime.cli import build_parser
build_parser()  # loads every command module, train's and convert's included
import edge_runtime.video.camera, edge_runtime.doctor, edge_runtime.video.media, edge_runtime.inference.enhance
from edge_runtime.inference.backends import edgetpu, litert, onnxruntime
from edge_runtime.video.sources import parse_source_uri
from edge_runtime.video.sinks import parse_sink_uri
parse_source_uri("demo://"); parse_sink_uri("null")
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras", "tf2onnx"})
print(",".join(heavy))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=cli_env(),
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"loaded: {r.stdout.strip()}"


def test_runtime_only_environment_lacks_tensorflow():
    if not os.environ.get("DECONV_EDGE_RUNTIME_ONLY"):
        pytest.skip("only meaningful in the runtime-only venv (tests/runtime_only.sh)")
    for name in HEAVY:
        assert importlib.util.find_spec(name) is None, f"{name} is installed in the runtime-only environment"
    r = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "No module named 'tensorflow'" in r.stderr


@pytest.mark.parametrize("argv", [
    ["train", "--data", "builtin", "--out", "x", "--steps", "1"],
    ["evaluate", "--model", "bicubic", "--data", "builtin", "--scale", "2"],
    ["convert", "m.keras", "--eval", "e", "--out", "o"],
])
def test_training_commands_need_the_train_extra(argv, tmp_path):
    """Without TensorFlow, train/evaluate/convert say what to install in one line and exit 2."""
    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("only meaningful in the runtime-only venv (tests/runtime_only.sh)")
    r = subprocess.run([sys.executable, "-m", "edge_runtime", *argv], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "pip install 'deconv-edge[train]'" in r.stderr, r.stderr
