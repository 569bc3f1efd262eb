"""Small readers for FHIR data types that tolerate malformed values (returning None, never raising)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from cds.fhir.memo import ConceptMemo

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):  # a tuple: compiled, `int | float` builds a union per call
        return float(value)
    return None


def parse_date(value: Any) -> date | None:
    """FHIR date/dateTime/instant to a date (partial dates take the first day of the month or year)."""
    if not isinstance(value, str):
        return None
    if len(value) >= 10 and value[4] == "-" and value[7] == "-":  # the common full date: C-speed parse
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    m = _DATE.match(value.strip())
    if not m:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1))
    except ValueError:
        return None


Coding = tuple[str, str, str]


def _codings(concept: Any) -> tuple[Coding, ...]:
    out: list[Coding] = []
    coding = concept.get("coding")
    for c in coding if isinstance(coding, list) else as_list(coding):
        if isinstance(c, dict):
            code = c.get("code")
            if isinstance(code, str):
                system, display = c.get("system"), c.get("display")
                out.append(
                    (
                        system if isinstance(system, str) else "",
                        code.strip(),
                        display if isinstance(display, str) else "",
                    )
                )
    return tuple(out)


_CODINGS: ConceptMemo[tuple[Coding, ...]] = ConceptMemo()


def codings(concept: Any) -> tuple[Coding, ...]:
    """(system, code, display) of every well-formed coding in a CodeableConcept."""
    if not isinstance(concept, dict):
        return ()
    return _CODINGS.get(concept, _codings)


def concept_texts(concept: Any) -> list[str]:
    """Human-readable strings of a CodeableConcept: its text and every coding display."""
    if not isinstance(concept, dict):
        return []
    texts = [t for t in [as_str(concept.get("text"))] if t]
    texts += [d for _, _, d in codings(concept) if d]
    return texts


def code_keys(concept: Any) -> list[str]:
    return [f"{s}|{c}" for s, c, _ in codings(concept)]


def resource_ref(resource: dict[str, Any]) -> str | None:
    rid = resource.get("id")
    if isinstance(rid, str) and rid:
        return f"{resource.get('resourceType')}/{rid}"
    return None


def period_bounds(period: Any) -> tuple[date | None, date | None]:
    if not isinstance(period, dict):
        return None, None
    return parse_date(period.get("start")), parse_date(period.get("end"))


def effective_date(resource: dict[str, Any]) -> date | None:
    for key in ("effectiveDateTime", "effectiveInstant"):
        d = parse_date(resource.get(key))
        if d:
            return d
    start, end = period_bounds(resource.get("effectivePeriod"))
    return start or end or parse_date(resource.get("issued"))


def first_datetime(value: Any) -> datetime | None:
    d = parse_date(value)
    return datetime(d.year, d.month, d.day) if d else None
