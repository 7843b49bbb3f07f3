"""The exporter interface, shared by every format file in this package.

An exporter turns a Keras model (already in its upsampler form) into one artifact file. It declares what the
rest of ``convert`` needs to know: the registry key, the file suffix, the runtime that reads the file, whether
it needs calibration data, which upsampler form suits its target, whether it needs static shapes, how its
accuracy gate works, and its options. Heavy libraries are imported inside :meth:`Exporter.export`, so listing
the formats (``deconv-edge convert --help``) stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from deconv_edge_core.errors import UserError
from deconv_edge_core.manifest import TensorSpec
from deconv_edge_core.registry import Registry

GATE_MAX_ABS = "max_abs_error"
GATE_PSNR_DROP = "psnr_drop_db"


@dataclass(frozen=True)
class Option:
    """A per-format option, set with ``--option FORMAT.NAME=VALUE``."""

    name: str
    default: str
    choices: tuple = ()
    help: str = ""

    def parse(self, value: str, key: str) -> str:
        if self.choices and value not in self.choices:
            raise UserError(f"option {key}.{self.name}={value} is invalid; choose from {', '.join(self.choices)}")
        return value


@dataclass(frozen=True, eq=False)
class ExportJob:
    """One export to perform.

    Attributes:
        model: the Keras model in the wanted upsampler form.
        input_shape: NHWC input shape, ``None`` for a dynamic dimension.
        dest: where to write the artifact (a temporary path; the caller renames it into place).
        work_dir: scratch folder, deleted afterwards.
        calib: a :class:`deconv_edge_convert.calibration.CalibrationSet` when the format needs one.
        options: ``((name, value), ...)`` for this format, defaults filled in.
        metadata: manifest essentials to embed inside the artifact.
        pins: what the full-integer export puts back on exact grids (``deconv_edge_convert.int8_forms.Pins``,
            from the int8 rewrite of ``model``); ``None`` for none.
    """

    model: Any
    input_shape: tuple
    dest: Path
    work_dir: Path
    calib: Any = None
    options: tuple = ()
    metadata: dict = field(default_factory=dict)
    pins: Any = None

    def option(self, name: str) -> str:
        for k, v in self.options:
            if k == name:
                return v
        raise KeyError(name)


@dataclass(frozen=True)
class ExportResult:
    """What an exporter reports about the file it wrote.

    Attributes:
        input, output: tensor specs as the runtime will see them.
        ops: operator types in graph order.
        notes: human-readable remarks for the report (one line each).
        extra: additional manifest fields (e.g. ``float_nodes``, ``edgetpu``).
    """

    input: TensorSpec
    output: TensorSpec
    ops: tuple
    notes: tuple = ()
    extra: dict = field(default_factory=dict)


class Exporter:
    """Base class; subclasses set the class attributes and implement :meth:`export`."""

    #: registry key and ``format`` in the manifest
    key: str = ""
    #: appended to the model's stem to name the artifact
    suffix: str = ""
    #: ``tflite`` | ``onnx`` (which backends can read it)
    runtime: str = ""
    needs_calibration: bool = False
    #: int8 weights: gets the int8 forms of the upsampler (``deconv_edge_convert.int8_forms``)
    int8_weights: bool = False
    #: int8 activations too: the output is also quantized on the display grid
    full_integer: bool = False
    #: ``cpu`` (CPU/GPU: sub-pixel upsampler is faster) | ``edgetpu`` (no DEPTH_TO_SPACE: deconvolution)
    target: str = "cpu"
    #: every dimension must be static (batch 1)
    static_shape: bool = False
    gate_metric: str = GATE_PSNR_DROP
    gate_threshold: float = 0.3
    options: tuple = ()
    description: str = ""

    @property
    def default_upsampler(self) -> str:
        return "deconv" if self.target == "edgetpu" else "subpixel"

    def resolve_options(self, given: dict) -> tuple:
        """Defaults overridden by ``given`` (name → value); unknown names raise a one-line error."""
        known = {o.name: o for o in self.options}
        for name in given:
            if name not in known:
                valid = ", ".join(known) or "none"
                raise UserError(f"format '{self.key}' has no option '{name}' (options: {valid})")
        return tuple((o.name, o.parse(given.get(o.name, o.default), self.key)) for o in self.options)

    def export(self, job: ExportJob) -> ExportResult:  # pragma: no cover - abstract
        raise NotImplementedError


class TFLiteExporter(Exporter):
    """Shared TFLite path: convert, embed metadata, list ops and I/O."""

    runtime = "tflite"
    mode = "fp32"

    def convert_bytes(self, job: ExportJob) -> tuple[bytes, list[str]]:
        """The converted flatbuffer and notes on what the int8 grid passes changed."""
        from .. import int8_refit, tflite_tools

        rep = job.calib.representative_dataset() if self.needs_calibration else None
        io_dtype = dict(job.options).get("io_dtype", "uint8")
        data = tflite_tools.convert(job.model, job.input_shape, mode=self.mode, representative=rep, io_dtype=io_dtype)
        if not self.full_integer:
            return data, []
        data, notes = tflite_tools.tighten_relu_add_inputs(tflite_tools.pin_exact_grids(data, job.pins))
        data = tflite_tools.pin_output_range(data)
        if dict(job.options).get("refit", "on") == "on":
            data, refit_notes = int8_refit.refit_output_convs(data, job.model, list(job.calib))
            notes = [*notes, *refit_notes]
        return data, notes

    def export(self, job: ExportJob) -> ExportResult:
        from .. import tflite_tools

        data, notes = self.convert_bytes(job)
        data = tflite_tools.embed_metadata(data, job.metadata)
        job.dest.write_bytes(data)
        inp, out = tflite_tools.tensor_specs(data)
        return self.finish(job, data, ExportResult(inp, out, tuple(tflite_tools.op_names(data)), tuple(notes)))

    def finish(self, job: ExportJob, data: bytes, result: ExportResult) -> ExportResult:
        """Hook for format-specific checks after writing."""
        return result


class OnnxExporter(Exporter):
    """Shared ONNX path: tf2onnx at the requested opset, then a format-specific transform."""

    runtime = "onnx"
    # tf2onnx 1.17 knows opsets up to 18.
    options = (Option("opset", "17", ("17", "18"), "ONNX opset (>= 17)"),)

    def transform(self, proto, job: ExportJob) -> tuple[Any, ExportResult | None]:
        return proto, None

    def export(self, job: ExportJob) -> ExportResult:

        from .. import onnx_tools

        proto = onnx_tools.convert(job.model, job.input_shape, opset=int(job.option("opset")))
        # Repair the layout on the float graph, so fp16/int8 variants are made from (and describe) the final one;
        # then check the variant again.
        layout_notes = onnx_tools.probe_layout(proto, job.input_shape, int(job.metadata["scale"]))
        variant, partial = self.transform(proto, job)
        if variant is not proto:  # onnx-fp32 keeps the graph just probed
            layout_notes += onnx_tools.probe_layout(variant, job.input_shape, int(job.metadata["scale"]))
        proto = variant
        onnx_tools.embed_metadata(proto, job.metadata)
        job.dest.write_bytes(proto.SerializeToString())
        inp, out = onnx_tools.tensor_specs(proto)
        notes, extra = (partial.notes, partial.extra) if partial else ((), {})
        notes = tuple(notes) + tuple(layout_notes)
        return ExportResult(inp, out, tuple(onnx_tools.op_types(proto)), notes, extra)


def check_tflite_static(data: bytes, key: str, allowed_ops: Optional[frozenset] = None) -> list[str]:
    """Problems that keep a TFLite model off a fixed-function accelerator (empty list = none)."""
    from .. import tflite_tools

    problems = []
    inp, out = tflite_tools.tensor_specs(data)
    for spec in (inp, out):
        if spec.is_dynamic:
            problems.append(f"{spec.name} has a dynamic shape {spec.shape}")
        elif spec.shape[0] != 1:
            problems.append(f"{spec.name} has batch {spec.shape[0]} (must be 1)")
    if allowed_ops is not None:
        bad = sorted({op for op in tflite_tools.op_names(data) if op not in allowed_ops})
        if bad:
            problems.append(f"ops not supported by {key}: {', '.join(bad)}")
    floats = sorted(n for n, dt in tflite_tools.tensor_dtypes(data).items() if dt in ("float32", "float16"))
    if floats:
        problems.append(f"{len(floats)} float tensor(s) left (e.g. {floats[0]}); the model is not fully integer")
    return problems


EXPORTERS: Registry = Registry("format")


def register_exporter(cls):
    """Class decorator: register one instance of an :class:`Exporter` subclass under ``cls.key``."""
    EXPORTERS.register(cls.key)(cls())
    return cls
