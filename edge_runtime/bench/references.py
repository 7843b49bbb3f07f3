"""MAC-rate references: what this machine's CPU reaches per precision, measured in the same run as the models.

A model's MAC rate means little alone; over the fastest rate the same CPU reaches in the same precision it
tells how much of the machine the model uses. So every reference case carries its precision, and a model is
only ever put against a reference of its own (:func:`edge_runtime.bench.results.with_limits`):

- ``int8``: one large int8 convolution (3x3, 64 to 64 channels, 128x128, int8 in and out) through LiteRT with
  XNNPACK, the runtime and kernels the int8 TFLite models use (VNNI / AMX on x86 and dotprod / i8mm on Arm
  when the CPU has them).
- ``fp32``: the same convolution in float32 through LiteRT/XNNPACK, and numpy's float32 GEMM (the BLAS).

The ``.tflite`` files ship in ``edge_runtime/bench/reference/`` (made by ``python -m benchmarks.references``,
which needs TensorFlow); a device needs only LiteRT to run them.
"""

from __future__ import annotations

from pathlib import Path

from .config import DEFAULT_GEMM_N, CaseSpec

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
#: (precision, file, label) of the packaged reference convolutions.
CONV_REFERENCES = (
    ("int8", "conv3x3_c64_int8.tflite", "LiteRT int8 conv 3x3x64x64 (reference)"),
    ("fp32", "conv3x3_c64_fp32.tflite", "LiteRT fp32 conv 3x3x64x64 (reference)"),
)
#: Shape of the reference convolution: NHWC input, and its kernel (kh, kw, in, out).
CONV_INPUT_SHAPE = (1, 128, 128, 64)
CONV_KERNEL = (3, 3, 64, 64)


def reference_path(file: str) -> Path:
    return REFERENCE_DIR / file


def reference_specs(threads: int, input_hw: tuple, gemm_n: int = DEFAULT_GEMM_N) -> list:
    """The reference cases of one group: each packaged convolution that exists, then the fp32 GEMM."""
    specs = [CaseSpec(kind="reference", label=label, threads=int(threads), input_hw=tuple(input_hw),
                      artifact=str(reference_path(file)), options=(("precision", precision),))
             for precision, file, label in CONV_REFERENCES if reference_path(file).is_file()]
    specs.append(CaseSpec(kind="gemm", label=f"numpy GEMM fp32 n={gemm_n} (reference)", threads=int(threads),
                          input_hw=tuple(input_hw), gemm_n=int(gemm_n)))
    return specs
