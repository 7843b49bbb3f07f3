"""Jinja expressions and block YAML for the Ansible files ``deploy --ansible`` writes (no PyYAML needed)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Sequence, Union


def jinja_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class ListVar:
    """A Jinja variable holding a list, spliced into an argument list (``[a] + NAME + [b]``)."""

    name: str


# ---- Jinja and YAML -----------------------------------------------------------------------------------------------
_TEMPLATE_RE = re.compile(r"\{\{\s*(.*?)\s*\}\}")


def jinja_expr(item: Union[str, ListVar]) -> str:
    """One argument as a Jinja expression: ``"{{ a }}/b"`` becomes ``(a) ~ '/b'``."""
    if isinstance(item, ListVar):
        return item.name
    parts, pos = [], 0
    for m in _TEMPLATE_RE.finditer(item):
        if m.start() > pos:
            parts.append(jinja_literal(item[pos:m.start()]))
        parts.append(f"({m.group(1)})")
        pos = m.end()
    if pos < len(item) or not parts:
        parts.append(jinja_literal(item[pos:]))
    return " ~ ".join(parts)


def list_expr(argv: Sequence[Union[str, ListVar]]) -> str:
    """An argument list with spliced lists as one Jinja list expression (no braces)."""
    groups, scalars = [], []
    for item in argv:
        if isinstance(item, ListVar):
            if scalars:
                groups.append("[" + ", ".join(scalars) + "]")
                scalars = []
            groups.append(item.name)
        else:
            scalars.append(jinja_expr(item))
    if scalars or not groups:
        groups.append("[" + ", ".join(scalars) + "]")
    return " + ".join(groups)


def argv_template(argv: Sequence[Union[str, ListVar]]) -> Union[list, str]:
    """``argv`` for ``ansible.builtin.command``: a plain list, or one template when a list is spliced in."""
    if not any(isinstance(a, ListVar) for a in argv):
        return [str(a) for a in argv]
    return "{{ " + list_expr(argv) + " }}"


def argv_if(condition: str, when_true: Sequence, when_false: Sequence) -> str:
    """One of two argument lists, chosen at run time by the Jinja test ``condition``."""
    return "{{ (" + list_expr(when_true) + f") if ({condition}) else (" + list_expr(when_false) + ") }}"


_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


def _scalar(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, (list, tuple)):
        return "[]"
    return json.dumps(str(value))  # a JSON string is a YAML double-quoted scalar


def to_yaml(obj, indent: int = 0) -> str:
    """Block-style YAML of dicts, lists and scalars (every string double-quoted; no PyYAML needed here)."""
    pad = "  " * indent
    if isinstance(obj, dict) and obj:
        lines = []
        for key, value in obj.items():
            k = key if _KEY_RE.match(key) else json.dumps(key)
            if isinstance(value, (dict, list, tuple)) and value:
                lines.append(f"{pad}{k}:\n{to_yaml(value, indent + 1)}")
            else:
                lines.append(f"{pad}{k}: {_scalar(value)}")
        return "\n".join(lines)
    if isinstance(obj, (list, tuple)) and obj:
        lines = []
        for value in obj:
            if isinstance(value, dict) and value:
                lines.append(f"{pad}- " + to_yaml(value, indent + 1)[len(pad) + 2:])
            elif isinstance(value, (list, tuple)) and value:
                lines.append(f"{pad}-\n{to_yaml(value, indent + 1)}")
            else:
                lines.append(f"{pad}- {_scalar(value)}")
        return "\n".join(lines)
    return pad + _scalar(obj)


def yaml_doc(header: str, obj) -> str:
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header.strip().splitlines())
    return f"---\n{comments}{to_yaml(obj)}\n"
