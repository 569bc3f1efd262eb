"""The Finding value every renderer reads: what was found, by which rule, from which evidence, on whose
authority. Rendering a rule's finding template happens here, so templates stay data."""

from __future__ import annotations

import re
from collections.abc import Mapping
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
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}".rstrip("0").rstrip(".") if abs(value - round(value)) > 1e-9 else str(int(round(value)))
    return str(value)


def render_template(template: str, scopes: Mapping[str, Mapping[str, Any]]) -> str:
    """Replace {bind.field} and {config.name}; a value that is not there reads 'unknown', never blank."""

    def sub(m: re.Match[str]) -> str:
        scope = scopes.get(m.group(1))
        if scope is None:
            return m.group(0)
        return fmt_value(scope.get(m.group(2)))

    return " ".join(_FIELD.sub(sub, template).split())
