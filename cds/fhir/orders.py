"""Outbound FHIR: a next-step option's proposal rendered as a draft order (MedicationRequest or ServiceRequest)
that an EHR can offer as a CDS Hooks suggestion. Starting doses come from the drug catalog (the low end of the
guideline's adjunct range, with its source); service codes from rules/catalog/services.yaml."""

from __future__ import annotations

import uuid
from typing import Any

from cds.knowledge import Knowledge

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_NAMESPACE = uuid.UUID("6f6e0c3e-2f0b-4c9a-9d39-7a2b1f1d7c11")


def order_template(proposal: dict[str, Any] | None, patient: str | None, knowledge: Knowledge) -> dict[str, Any] | None:
    if not proposal:
        return None
    if proposal.get("kind") == "medication":
        return _medication_request(str(proposal.get("ingredient")), patient, knowledge)
    if proposal.get("kind") == "service":
        return _service_request(str(proposal.get("service")), patient, knowledge)
    return None


def _id(*parts: str | None) -> str:
    return str(uuid.uuid5(_NAMESPACE, "|".join(p or "" for p in parts)))


def _medication_request(ingredient: str, patient: str | None, knowledge: Knowledge) -> dict[str, Any] | None:
    drug = knowledge.catalog.get(ingredient)
    if drug is None:
        return None
    coding = [{"system": RXNORM, "code": drug.rxnorm[0], "display": drug.ingredient}] if drug.rxnorm else []
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": _id("MedicationRequest", patient, ingredient),
        "status": "draft",
        "intent": "proposal",
        "medicationCodeableConcept": {"coding": coding, "text": drug.ingredient},
        "subject": {"reference": patient or "Patient/unknown"},
    }
    rng = drug.usual_range_mg
    if rng is not None:
        amount, unit = (rng.low * 1000, "ug") if rng.low < 1 else (rng.low, "mg")
        shown = "mcg" if unit == "ug" else "mg"
        resource["dosageInstruction"] = [
            {
                "text": f"{drug.ingredient} {amount:g} {shown} once daily to start; usual target "
                f"{rng.low:g}-{rng.high:g} mg/day ({rng.source}, confidence {rng.confidence})",
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": amount,
                            "unit": shown,
                            "system": "http://unitsofmeasure.org",
                            "code": unit,
                        }
                    }
                ],
            }
        ]
    resource["note"] = [{"text": "Draft proposed by TRD decision support; review dose, interactions and monitoring."}]
    return resource


def _service_request(service: str, patient: str | None, knowledge: Knowledge) -> dict[str, Any] | None:
    entry = knowledge.services.get(service)
    if entry is None:
        return None
    return {
        "resourceType": "ServiceRequest",
        "id": _id("ServiceRequest", patient, service),
        "status": "draft",
        "intent": "proposal",
        "code": {"coding": list(entry.get("codes") or []), "text": entry.get("text", service)},
        "subject": {"reference": patient or "Patient/unknown"},
        "note": [{"text": f"Draft proposed by TRD decision support ({entry.get('source', '')})."}],
    }
