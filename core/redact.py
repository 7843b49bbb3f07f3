"""Credentials out of everything the program prints or writes: ``rtsp://admin:pw@cam/`` → ``rtsp://***@cam/``.

IP cameras take their password in the URL, and the URL ends up in error messages, the stats JSON, the
preview page and logs. Every one of those goes through :func:`redact` (the CLI applies it to each message
it prints), so a password given on the command line is only ever in the process's own argv.
"""

from __future__ import annotations

import re
from typing import Any

#: ``scheme://user[:password]@`` in any text; the user name is hidden too (often half of the secret).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s'\"<>]+@")
#: ``?password=...`` style query parameters of stream URLs.
_SECRET_PARAM = re.compile(r"(?i)([?&](?:password|passwd|pwd|pass|token|auth|key|secret)=)[^&\s'\"<>]*")


def redact(value: Any) -> Any:
    """``value`` with URL credentials replaced by ``***``: strings, and lists/tuples/dicts of them, deeply."""
    if isinstance(value, str):
        return _SECRET_PARAM.sub(r"\1***", _USERINFO.sub(r"\1***@", value))
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    return value
