"""The manifest against the model: the tensors the interpreter or session really has must be the declared ones.

A manifest is untrusted input like any file from outside. One whose dtype, shape or quantization disagrees
with the artifact it describes would make the runtime feed the model garbage (a 5.9 dB picture with rc 0) or
fail deep inside numpy (``could not broadcast``), so each backend compares them right after loading and
refuses the pair with one line.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence

import numpy as np

from deconv_edge_core.errors import UserError
from deconv_edge_core.manifest import Manifest, TensorSpec

from .limits import check_allocation, model_bytes


def _dims(shape: Sequence) -> tuple:
    """Shape with every dynamic dimension (``-1``, ``None``, a symbolic name) as ``None``."""
    return tuple(int(d) if isinstance(d, (int, np.integer)) and int(d) >= 0 else None for d in shape)


def _shape_problem(key: str, spec: TensorSpec, real: Sequence) -> Optional[str]:
    real = _dims(real)
    declared = tuple(spec.shape)  # in the tensor's own layout, as the model has it
    if len(real) != len(declared):
        return f"{key} has {len(real)} dimensions {list(real)}, the manifest says {list(declared)}"
    for a, b in zip(declared, real):
        # The runtime feeds what the manifest says: a fixed size the model fixes differently, or a dynamic one
        # the model fixes, breaks at the first frame (a dynamic model dimension accepts any fixed size).
        if b is not None and a != b:
            shown = [d if d is not None else "dynamic" for d in declared]
            return f"{key} shape is {list(real)}, the manifest says {shown}"
    return None


def _quant_problem(key: str, spec: TensorSpec, scale: float, zero_point: int) -> Optional[str]:
    q = spec.quantization
    if q is None:
        return None if not scale else f"{key} is quantized (scale {scale:g}), the manifest says it is not"
    if not scale:
        return f"{key} is not quantized, the manifest gives scale {q.scale:g}"
    if not math.isclose(q.scale, scale, rel_tol=1e-5) or int(q.zero_point) != int(zero_point):
        return (f"{key} quantization is scale {scale:g} / zero point {zero_point}, the manifest says "
                f"{q.scale:g} / {q.zero_point}")
    return None


def _raise(artifact_name: str, problems: Iterable[Optional[str]]) -> None:
    found = [p for p in problems if p]
    if found:
        raise UserError(f"'{artifact_name}' does not match its manifest: {'; '.join(found)}; the manifest was edited "
                        "or belongs to another model: convert the model again")


def check_litert(artifact_name: str, manifest: Manifest, inputs: list, outputs: list) -> None:
    """Compare LiteRT ``get_input_details()`` / ``get_output_details()`` with the manifest.

    Raises:
        UserError: any disagreement, or a fixed input so large its activations would not fit in memory.
    """
    if len(inputs) != 1 or len(outputs) != 1:
        _raise(artifact_name, [f"the model has {len(inputs)} inputs and {len(outputs)} outputs, not one each"])
    problems = []
    for key, spec, det in (("input", manifest.input, inputs[0]), ("output", manifest.output, outputs[0])):
        dtype = np.dtype(det["dtype"]).name
        if dtype != spec.dtype:
            problems.append(f"{key} dtype is {dtype}, the manifest says {spec.dtype}")
        problems.append(_shape_problem(key, spec, det.get("shape_signature", det["shape"])))
        scale, zero_point = det.get("quantization", (0.0, 0))
        problems.append(_quant_problem(key, spec, float(scale), int(zero_point)))
    _raise(artifact_name, problems)
    _check_fixed_size(artifact_name, _dims(inputs[0].get("shape_signature", inputs[0]["shape"])), manifest.scale)


def check_onnx(artifact_name: str, manifest: Manifest, inputs: list, outputs: list) -> None:
    """Compare ONNX Runtime ``get_inputs()`` / ``get_outputs()`` (``NodeArg``) with the manifest.

    Raises:
        UserError: any disagreement.
    """
    if len(inputs) != 1 or len(outputs) != 1:
        _raise(artifact_name, [f"the model has {len(inputs)} inputs and {len(outputs)} outputs, not one each"])
    problems = []
    for key, spec, arg in (("input", manifest.input, inputs[0]), ("output", manifest.output, outputs[0])):
        dtype = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8",
                 "tensor(int8)": "int8", "tensor(int16)": "int16"}.get(arg.type, arg.type)
        if dtype != spec.dtype:
            problems.append(f"{key} dtype is {dtype}, the manifest says {spec.dtype}")
        if spec.quantization is not None:
            problems.append(f"{key}: ONNX artifacts take real values, the manifest gives quantization")
        problems.append(_shape_problem(key, spec, arg.shape))
    _raise(artifact_name, problems)
    _check_fixed_size(artifact_name, _dims(inputs[0].shape), manifest.scale)


def _check_fixed_size(artifact_name: str, shape: tuple, scale: int) -> None:
    """A fixed input shape is allocated in full when the model loads: it must fit before it is asked for."""
    known = [d for d in shape if d is not None]
    if len(known) == len(shape):
        check_allocation(model_bytes(int(np.prod(known, dtype=np.float64)), scale),
                         f"'{artifact_name}' with its fixed input {list(shape)}")
