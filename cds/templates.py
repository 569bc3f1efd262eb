"""Finding templates and values as text: "{bind.field}" filled from the facts a rule bound, every value shown
the same way (unknown, yes/no, numbers without a trailing .0). Compiled at install (setup.py): findings are
rendered for every patient."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

_FIELD = re.compile(r"\{([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\}")


def fmt_value(value: Any) -> str:
    if type(value) is str:  # the common case, first
        return value
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return _float_text(value)
    return str(value)


@lru_cache(maxsize=4096)  # doses, weeks and scores repeat; formatting a float costs about a microsecond
def _float_text(value: float) -> str:
    whole = round(value)
    return f"{value:.1f}".rstrip("0").rstrip(".") if abs(value - whole) > 1e-9 else str(whole)


@lru_cache(maxsize=4096)
def _compile(template: str) -> tuple[tuple[tuple[str, str, str], ...], str]:
    """A template as its (literal, scope, field) parts and the trailing literal, parsed once: findings are
    rendered for every patient."""
    parts: list[tuple[str, str, str]] = []
    pos = 0
    text = " ".join(template.split())
    for m in _FIELD.finditer(text):
        parts.append((text[pos : m.start()], m.group(1), m.group(2)))
        pos = m.end()
    return tuple(parts), text[pos:]


def render_template(template: str, scopes: Mapping[str, Mapping[str, Any]]) -> str:
    """Replace {bind.field} and {config.name}; a value that is not there reads 'unknown', never blank."""
    parts, tail = _compile(template)
    out: list[str] = []
    for literal, scope_name, name in parts:
        out.append(literal)
        scope = scopes.get(scope_name)
        out.append(f"{{{scope_name}.{name}}}" if scope is None else fmt_value(scope.get(name)))
    out.append(tail)
    return "".join(out).strip()
