"""Coral Edge TPU: the LiteRT interpreter with the ``libedgetpu`` delegate."""

from __future__ import annotations

import ctypes
import platform
from functools import lru_cache
from typing import Optional

from deconv_edge_core.errors import UserError

from . import register_backend
from .litert import LiteRTBackend, interpreter_module

EDGETPU_HINT = ("Edge TPU runtime not found: install libedgetpu1-std (https://coral.ai/docs/accelerator/get-started) "
                "and pip install 'deconv-edge[edgetpu]'")


def delegate_library() -> str:
    """The delegate's shared library name on this OS."""
    return {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}.get(
        platform.system(), "libedgetpu.so.1")


@lru_cache(maxsize=1)
def load_error() -> Optional[str]:
    """``None`` if the Edge TPU delegate loads here, else why not."""
    mod = interpreter_module()
    if mod is None:
        return "no TFLite runtime installed: pip install 'deconv-edge[edgetpu]'"
    try:
        # Probe with ctypes first: load_delegate on a missing library leaves a half-built Delegate whose
        # __del__ prints "AttributeError: ... '_library'" (ai-edge-litert quirk).
        ctypes.CDLL(delegate_library())
        mod.load_delegate(delegate_library())
    except (ValueError, OSError, RuntimeError, AttributeError) as exc:
        return f"{EDGETPU_HINT} ({(str(exc).splitlines() or [type(exc).__name__])[0][:120]})"
    return None


@register_backend("edgetpu")
class EdgeTPUBackend(LiteRTBackend):
    """Edge TPU artifacts (compiled by ``edgetpu_compiler``) on a Coral USB/PCIe/M.2 accelerator."""

    @classmethod
    def available(cls) -> Optional[str]:
        return load_error()

    def _delegates(self) -> list:
        if not hasattr(self, "_delegate_objs"):
            try:
                self._delegate_objs = [interpreter_module().load_delegate(delegate_library())]
            except (ValueError, OSError, RuntimeError) as exc:
                raise UserError(f"{EDGETPU_HINT} ({exc})") from None
        return self._delegate_objs
