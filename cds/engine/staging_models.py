"""The staging results' value types, apart from the arithmetic (cds/engine/staging.py), which is compiled and so
defines no pydantic model (docs/architecture.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class StagingComponent(BaseModel):
    model_config = ConfigDict(frozen=True)
    component: str
    points: float
    rule: str
    summary: str
    evidence: tuple[str, ...] = ()


class StagingResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    model: str
    computed: bool
    value: float | None = None
    label: str | None = None
    category: str | None = None
    reason: str | None = None
    components: tuple[StagingComponent, ...] = ()
    details: dict[str, Any] = Field(default_factory=dict)
