"""Small builders for hand-written test records (FHIR JSON kept compact)."""

from __future__ import annotations

import json
from typing import Any

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"


def bundle(*resources: dict[str, Any], patient: bool = True) -> bytes:
    entries = [{"resource": {"resourceType": "Patient", "id": "p1"}}] if patient else []
    entries += [{"resource": r} for r in resources]
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}).encode()


def statement(
    rid: str,
    code: str,
    start: str,
    end: str | None,
    *,
    mg: float | None = None,
    per_day: int = 1,
    status: str = "completed",
    display: str = "",
    **extra: Any,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": rid,
        "status": status,
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": display}]},
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": start, **({"end": end} if end else {})},
    }
    if mg is not None:
        res["dosage"] = [
            {
                "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg", "code": "mg"}}],
            }
        ]
    res.update(extra)
    return res


def phq9(rid: str, day: str, value: Any, key: str = "valueInteger") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "44261-6"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": day,
        key: value,
    }


def mdd(rid: str = "c1", onset: str = "2024-01-01") -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F33.1"}]},
        "subject": {"reference": "Patient/p1"},
        "onsetDateTime": onset,
    }
