"""The Finding value every renderer reads: what was found, by which rule, from which evidence, on whose
authority. A rule's finding template is rendered by cds/templates.py (compiled, so it holds no model), so
templates stay data."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cds.templates import fmt_value as fmt_value
from cds.templates import render_template as render_template

Indicator = Literal["info", "warning", "critical"]


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
