"""The benchmark's parts that decide what its numbers mean: the backend's own call counter, MAC-rate limits
per precision, the CPU fingerprint, and the worker protocol's independence from the rest of the project."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edge_runtime.bench.config import CaseSpec
from edge_runtime.bench.fingerprint import DeviceInfo, device_fingerprint
from edge_runtime.bench.results import (
    CaseInfo,
    FinishInfo,
    GraphInfo,
    LoadInfo,
    Samples,
    build_result,
    with_limits,
)
from edge_runtime.inference.backends import Backend
from edge_runtime.inference.default_model import MODELS_DIR
from edge_runtime.machine import cpu_identity, cpu_isa, isa_summary

from .conftest import REPO, synthetic_frame

INT8_MODEL = MODELS_DIR / "fsrcnn_x2_int8.tflite"


# ---- the backend counts its own calls ---------------------------------------------------------------------
def test_backend_counts_the_8bit_frame_path():
    """The 8-bit frame path calls ``run_native``; the counter sees it (the monkeypatched ``run`` did not)."""
    from edge_runtime.inference.enhance import Enhancer

    enhancer = Enhancer(INT8_MODEL)
    stats = enhancer.backend.stats
    stats.reset()
    enhancer(synthetic_frame(64, 48))
    assert dict(stats.calls) == {"run_native": 1}
    assert dict(stats.input_shapes) == {(1, 48, 64, 1): 1}
    assert stats.seconds > 0 and stats.last_s > 0 and stats.last_entry == "run_native"
    # run() goes through the uncounted inner native call: one call, counted once.
    enhancer.backend.run(np.zeros((1, 8, 8, 1), np.float32))
    assert dict(stats.calls) == {"run_native": 1, "run": 1} and stats.total == 2


def test_backend_counts_tiled_calls(tf_artifacts):
    from edge_runtime.inference.enhance import Enhancer

    from .conftest import FIXED_TILE, TEST_HALO

    enhancer = Enhancer(tf_artifacts.fixed, halo=TEST_HALO, max_batch=2)
    enhancer.backend.stats.reset()
    enhancer(synthetic_frame(100, 70))
    stats = enhancer.backend.stats
    assert stats.calls["run"] >= 2 and stats.calls["run_native"] == 0
    assert set(stats.input_shapes) == {(2, *FIXED_TILE, 1)}


def test_a_backend_that_overrides_run_is_refused():
    with pytest.raises(TypeError, match="_run"):
        class Sneaky(Backend):  # noqa: F841 - defining it is the test
            def run(self, x):
                return x


# ---- MAC-rate limits per precision ------------------------------------------------------------------------
def _result(label: str, kind: str, precision, gmacs: float, group: str = "g"):
    """A result whose model call ran 1 G MACs at ``gmacs`` GMAC/s."""
    info = CaseInfo(precision=precision, calls_per_frame=1)
    return build_result(CaseSpec(kind=kind, label=label), group, LoadInfo(1.0, 1.0, 1.0, info),
                        Samples([1000.0 / gmacs]), FinishInfo(1.0, 1.0, GraphInfo(macs_per_call=10 ** 9)), None)


def test_int8_models_are_put_against_the_int8_reference():
    """An int8 model at 49 GMAC/s over the 48 GMAC/s fp32 GEMM once read "102 %"; against int8 it is 24.5 %."""
    results = with_limits([
        _result("int8 model", "artifact", "int8", 49.0), _result("fp32 model", "artifact", "fp32", 20.0),
        _result("gemm", "gemm", "fp32", 48.0), _result("fp32 conv", "reference", "fp32", 40.0),
        _result("int8 conv", "reference", "int8", 200.0), _result("int8 elsewhere", "artifact", "int8", 49.0, "h"),
        _result("peer", "peer", None, 10.0)])
    by = {r.label: r for r in results}
    assert by["int8 model"].limit_case == "int8 conv"
    assert by["int8 model"].fraction_of_limit == pytest.approx(49.0 / 200.0)
    assert by["fp32 model"].limit_case == "gemm" and by["fp32 model"].fraction_of_limit == pytest.approx(20 / 48)
    assert by["int8 elsewhere"].fraction_of_limit is None  # no reference in its own group
    assert by["peer"].fraction_of_limit is None and by["gemm"].fraction_of_limit is None
    assert all(r.fraction_of_limit is None or r.fraction_of_limit < 1 for r in results)


def test_the_reference_files_compute_in_their_precision():
    """The shipped reference convolutions: int8 tensors in the int8 file, float32 in the fp32 one."""
    from edge_runtime.bench.references import CONV_INPUT_SHAPE, CONV_KERNEL, CONV_REFERENCES, reference_path
    from edge_runtime.inference.backends.litert import interpreter_module

    mod = interpreter_module()
    for precision, file, _ in CONV_REFERENCES:
        it = mod.Interpreter(model_path=str(reference_path(file)))
        it.allocate_tensors()
        assert tuple(it.get_input_details()[0]["shape"]) == CONV_INPUT_SHAPE
        dtypes = {np.dtype(t["dtype"]).name for t in it.get_tensor_details() if len(t["shape"]) == 4}
        assert dtypes == ({"int8"} if precision == "int8" else {"float32"}), (file, dtypes)
        assert [o["op_name"] for o in it._get_ops_details() if o["op_name"] != "DELEGATE"] == ["CONV_2D"]
    assert CONV_KERNEL[2] == CONV_INPUT_SHAPE[3]


# ---- the CPU fingerprint ----------------------------------------------------------------------------------
AMD_EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
stepping\t: 1
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2
"""
XEON_VNNI = AMD_EPYC.replace("AuthenticAMD", "GenuineIntel").replace("25", "6").replace("AMD EPYC", "Intel Xeon") \
    .replace("bmi2", "bmi2 avx512f avx512bw avx512_vnni avx_vnni amx_tile amx_int8")
PI5 = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x4
CPU part\t: 0xd0b
CPU revision\t: 1
"""


def test_cpu_generation_and_isa_are_recorded():
    """"AMD EPYC" alone hid that one machine had VNNI and the next did not (81.7 against 21.6 ms int8)."""
    assert cpu_identity(AMD_EPYC) == {"vendor": "AuthenticAMD", "family": 25, "model": 1, "stepping": 1}
    assert cpu_isa(AMD_EPYC) == ["AVX2", "FMA"]
    assert isa_summary(cpu_isa(AMD_EPYC), "x86_64") == "AVX2, FMA; no AVX-512, VNNI, AMX"
    assert cpu_isa(XEON_VNNI) == ["AVX2", "FMA", "AVX-512", "AVX512-VNNI", "AVX-VNNI", "AMX-INT8"]
    assert "; no" not in isa_summary(cpu_isa(XEON_VNNI), "x86_64")
    assert cpu_identity(PI5)["part"] == "0xd0b"
    assert cpu_isa(PI5) == ["asimd", "dotprod", "fp16"]
    assert isa_summary(cpu_isa(PI5), "aarch64") == "asimd, dotprod, fp16; no i8mm"
    assert isa_summary(None, "x86_64") == "ISA unknown"


def test_device_line_names_the_cpu_kind():
    d = device_fingerprint()
    base = dict(d.to_dict(), cpu_model="AMD EPYC", cpu_id=cpu_identity(AMD_EPYC), isa=cpu_isa(AMD_EPYC),
                machine="x86_64", board_model=None)
    line = DeviceInfo(**base).short()
    assert line.startswith("AMD EPYC (family 25 model 1; AVX2, FMA; no AVX-512, VNNI, AMX)"), line
    if sys.platform.startswith("linux"):
        assert d.isa is not None and d.cpu_id  # this machine's own /proc/cpuinfo was read


# ---- the worker protocol stands alone ---------------------------------------------------------------------
def test_peer_worker_loads_the_protocol_without_site_packages():
    """``benchmarks/peer_worker.py`` runs in a venv with only numpy and OpenCV: with no site-packages at all it
    still speaks the protocol (its one-line answer is that OpenCV is missing, not an ImportError of ours)."""
    spec = CaseSpec(kind="peer", label="peer", input_hw=(8, 8), options=(("model", "m.pb"), ("algo", "fsrcnn")))
    proc = subprocess.run([sys.executable, "-I", "-S", str(REPO / "benchmarks" / "peer_worker.py"), spec.to_json()],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    answers = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert answers and answers[0]["ok"] is False, (proc.stdout, proc.stderr)
    assert "No module named" in answers[0]["error"] and ("cv2" in answers[0]["error"] or "numpy" in answers[0]["error"])
    assert proc.returncode == 1
