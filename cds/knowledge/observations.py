"""Labs and vital signs the confounder and safety rules read (rules/catalog/observations.yaml): which codes
name which analyte, the canonical unit and conversions, and fallback reference ranges with their provenance."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cds.knowledge.models import Coding, Confidence, Source


class _Open(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class DefaultRange(_Open):
    low: float | None = None
    high: float | None = None
    source: str
    confidence: Confidence
    note: str | None = None


class Threshold(_Open):
    value: float
    source: str
    confidence: Confidence
    note: str | None = None


class Analyte(_Open):
    id: str
    name: str
    codes: tuple[Coding, ...]
    unit: str
    units: dict[str, float] = Field(default_factory=dict)
    default_range: DefaultRange | None = None
    thresholds: dict[str, Any] = Field(default_factory=dict)


class PregnancyTests(_Open):
    codes: tuple[Coding, ...] = ()
    positive_answers: tuple[Any, ...] = ()


class ObservationCatalogFile(_Open):
    version: str
    sources: dict[str, Source] = Field(default_factory=dict)
    analytes: tuple[Analyte, ...]
    bp_panel_codes: tuple[Any, ...] = ()
    pregnancy_tests: Any = None
    pregnancy_status: Any = None


class ObservationCatalog:
    def __init__(self, data: ObservationCatalogFile | None) -> None:
        self.analytes: dict[str, Analyte] = {a.id: a for a in (data.analytes if data else ())}
        self._by_code: dict[tuple[str, str], Analyte] = {
            (c.system, c.code): a for a in self.analytes.values() for c in a.codes
        }
        self.pregnancy_codes: set[str] = set()
        self.positive_answers: set[str] = set()
        if data is not None:
            self.pregnancy_codes = set(_codes(data.pregnancy_tests)) | set(_codes(data.pregnancy_status))
            self.positive_answers = set(_answers(data.pregnancy_tests)) | set(_answers(data.pregnancy_status))

    def match(self, system: str, code: str) -> Analyte | None:
        return self._by_code.get((system, code))

    def threshold(self, analyte: str, name: str) -> float | None:
        a = self.analytes.get(analyte)
        raw = a.thresholds.get(name) if a else None
        if isinstance(raw, dict) and isinstance(raw.get("value"), int | float):
            return float(raw["value"])
        return None


def _codes(block: Any) -> Iterable[str]:
    """Codes from the loosely shaped pregnancy blocks: a list of codings, or a mapping with `codes`/`code`."""
    items: list[Any] = []
    if isinstance(block, list):
        items = block
    elif isinstance(block, dict):
        items = list(block.get("codes") or []) + ([block] if "code" in block else [])
    for item in items:
        if isinstance(item, dict) and item.get("code"):
            yield str(item["code"])
        elif isinstance(item, str):
            yield item


def _answers(block: Any) -> Iterable[str]:
    if isinstance(block, dict):
        for key in ("positive_answers", "answers", "answer"):
            for a in block.get(key) or []:
                if isinstance(a, dict):
                    for k in ("code", "text", "display"):
                        if a.get(k):
                            yield str(a[k]).lower()
                elif isinstance(a, str):
                    yield a.lower()


def load_observation_catalog(path: Path, load: Any) -> ObservationCatalog:
    if not path.exists():
        return ObservationCatalog(None)
    return ObservationCatalog(load(path, ObservationCatalogFile))
