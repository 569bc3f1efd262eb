"""The Finding value every renderer reads: what was found, by which rule, from which evidence, on whose
authority. Rendering a rule's finding template happens here, so templates stay data."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Indicator = Literal["info", "warning", "critical"]
_FIELD = re.compile(r"\{([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\}")


class FindingSource(BaseModel):
    model_config = ConfigDict(frozen=True)
    label: str
    url: str | None = None
    confidence: str | None = None


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)
    code: str
    rule: str
    rule_version: str
    category: str
    indicator: Indicator
    summary: str
    detail: str
    evidence: tuple[str, ...]
    source: FindingSource
    subject: str | None = None  # the fact the finding is about (e.g. "trial-2"), for grouping in renderers
    needs_clinical_review: bool = False
    attributes: dict[str, Any] = Field(default_factory=dict)  # e.g. line, evidence level, eligible (options)
    proposal: dict[str, Any] | None = None  # an order to suggest; cds/fhir/orders.py renders it as FHIR


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
