"""``null``: drop every frame (time the loop without output cost)."""

from __future__ import annotations

from . import Sink, register_sink


@register_sink("null")
class NullSink(Sink):
    def write(self, frame) -> None:
        pass
