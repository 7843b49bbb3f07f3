"""What a benchmark measures: the options (:class:`BenchConfig`), their parsers, and one case (:class:`CaseSpec`).

Standard library and the kernel only: ``benchmarks/peer_worker.py`` reads :class:`CaseSpec` in the peer's own
venv, where nothing else of this project is installed.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Optional

from deconv_edge_core.argtypes import split_hw
from deconv_edge_core.errors import UserError

DEFAULT_INPUT_HW = (240, 320)
DEFAULT_RUNS = 50
DEFAULT_WARMUP = 5
MAX_THREADS = 256
MAX_INPUT_SIDE = 8192
#: Matrix size of the GEMM reference case (n x n x n MACs per call).
DEFAULT_GEMM_N = 512
#: Frame-path stages the Enhancer reports, in order.
STAGES = ("preprocess", "invoke", "postprocess")


def parse_threads(text: str) -> tuple:
    """``"1,2,4"`` → ``(1, 2, 4)`` (order kept, duplicates dropped).

    Raises:
        UserError: empty, not an integer, or outside 1..256.
    """
    items = [s.strip() for s in str(text).split(",") if s.strip()]
    if not items:
        raise UserError(f"bad --threads '{text}': expected a comma-separated list such as 1,2,4")
    out = []
    for item in items:
        if not re.fullmatch(r"\d+", item):
            raise UserError(f"bad --threads '{text}': '{item}' is not a positive integer")
        n = int(item)
        if not 1 <= n <= MAX_THREADS:
            raise UserError(f"bad --threads '{text}': thread counts must be 1..{MAX_THREADS}, got {n}")
        if n not in out:
            out.append(n)
    return tuple(out)


def parse_input_size(text: str) -> tuple:
    """``"240x320"`` → ``(240, 320)``: height x width of the low-resolution frame.

    Raises:
        UserError: not ``HxW`` or a side outside 1..8192.
    """
    hw = split_hw(text)
    if not hw:
        raise UserError(f"bad --input-size '{text}': expected HxW (height x width), e.g. 240x320")
    h, w = hw
    if not (0 < h <= MAX_INPUT_SIDE and 0 < w <= MAX_INPUT_SIDE):
        raise UserError(f"bad --input-size '{text}': each side must be 1..{MAX_INPUT_SIDE}")
    return h, w


def default_threads() -> tuple:
    """One thread, and every usable core."""
    from ..machine import usable_cores  # standard library only, so the peer's venv can load it too

    return tuple(dict.fromkeys((1, usable_cores())))


@dataclass(frozen=True)
class BenchConfig:
    """What ``deconv-edge bench`` measures.

    Attributes:
        artifacts: artifact (or manifest) paths; the first is the reference for ratios.
        backends: backend keys (``auto`` = the one each manifest calls for).
        threads: thread counts; each is one interleaved group.
        input_hw: low-resolution frame (height, width) for the frame path (fixed-shape artifacts tile it).
        runs: measured iterations per case.
        warmup: unmeasured iterations per case before the measured ones.
        bicubic: add a plain-bicubic case to every group (the floor any model must beat).
        references: add the MAC-rate reference cases (int8 and fp32 convolutions through LiteRT, the fp32
            GEMM) to every group, so each model's MAC rate is put against its precision's limit.
    """

    artifacts: tuple
    backends: tuple = ("auto",)
    threads: tuple = (1,)
    input_hw: tuple = DEFAULT_INPUT_HW
    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    bicubic: bool = False
    references: bool = False

    def __post_init__(self):
        if not self.artifacts:
            raise UserError("no artifact given: deconv-edge bench ARTIFACT [ARTIFACT ...]")
        if not self.threads or any(not 1 <= int(t) <= MAX_THREADS for t in self.threads):
            raise UserError(f"thread counts must be 1..{MAX_THREADS}, got {list(self.threads)}")
        if int(self.runs) < 1:
            raise UserError(f"--runs must be >= 1, got {self.runs}")
        if int(self.warmup) < 0:
            raise UserError(f"--warmup must be >= 0, got {self.warmup}")
        h, w = self.input_hw
        if not (0 < h <= MAX_INPUT_SIDE and 0 < w <= MAX_INPUT_SIDE):
            raise UserError(f"input size {h}x{w} is out of range (1..{MAX_INPUT_SIDE} per side)")

    def to_dict(self) -> dict:
        return {"artifacts": [str(a) for a in self.artifacts], "backends": list(self.backends),
                "threads": list(self.threads), "input_hw": list(self.input_hw), "runs": self.runs,
                "warmup": self.warmup, "bicubic": self.bicubic, "references": self.references}


@dataclass(frozen=True)
class CaseSpec:
    """One case as its worker receives it (JSON on the command line).

    Attributes:
        kind: worker's runner key (``artifact``, ``bicubic``, ``gemm``, ``reference``; ``peer`` in
            ``benchmarks/``).
        label: name shown in tables.
        threads: CPU threads for the runtime and OpenCV.
        input_hw: low-resolution frame (height, width).
        artifact: model path (``artifact``, ``reference`` and ``peer`` kinds); absolute, since the worker may
            run elsewhere.
        backend: backend key (``artifact`` kind).
        scale: upscaling factor (bicubic and peer; artifacts read theirs from the manifest).
        gemm_n: matrix size of the ``gemm`` kind.
        options: extra ``(name, value)`` pairs for other runners (e.g. the peer's algorithm name).
    """

    kind: str
    label: str
    threads: int = 1
    input_hw: tuple = DEFAULT_INPUT_HW
    artifact: Optional[str] = None
    backend: str = "auto"
    scale: int = 2
    gemm_n: int = DEFAULT_GEMM_N
    options: tuple = ()

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["input_hw"] = list(self.input_hw)
        d["options"] = [list(o) for o in self.options]
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> CaseSpec:
        d = json.loads(text)
        d["input_hw"] = tuple(d["input_hw"])
        d["options"] = tuple(tuple(o) for o in d.get("options", ()))
        return cls(**d)

    def option(self, name: str, default=None):
        return dict(self.options).get(name, default)
