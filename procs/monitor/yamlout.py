"""A small YAML writer for the config files this program emits (dicts, lists and scalars).

Strings are written as JSON strings, which are valid YAML double-quoted scalars, so no PromQL
expression, label or template needs YAML escaping rules of its own. Kept here instead of a
PyYAML dependency: we only ever write, and only these few shapes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["dump"]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, Mapping):
        if not value:
            return [pad + "{}"]
        out = []
        for k, v in value.items():
            key = _scalar(str(k)) if not str(k).replace("_", "").isalnum() else str(k)
            if isinstance(v, Mapping | list | tuple) and v:
                out.append(f"{pad}{key}:")
                out += _lines(v, indent + 2)
            else:
                out.append(f"{pad}{key}: {_inline(v)}")
        return out
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            return [pad + "[]"]
        out = []
        for item in value:
            sub = _lines(item, indent + 2)
            out.append(f"{pad}- {sub[0].lstrip()}")
            out += sub[1:]
        return out
    return [pad + _scalar(value)]


def _inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list | tuple):
        return "[]"
    return _scalar(value)


def dump(doc: Mapping[str, Any], header: str = "") -> str:
    """Return ``doc`` as YAML text, with ``header`` lines as comments on top."""
    top = [f"# {line}".rstrip() for line in header.splitlines()]
    return "\n".join([*top, *_lines(doc, 0)]) + "\n"
