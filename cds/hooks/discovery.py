"""The services we offer and the discovery document (`GET /cds-services`), generated from rule metadata."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from cds.hooks.rule_docs import RuleCatalog

OrderScope = Literal["none", "selections", "draft-orders"]

PATIENT = "{{context.patientId}}"
# Inside the CDS Hooks recommended query subset: instance reads and type-level searches on a reference.
RECORD_PREFETCH: dict[str, str] = {
    "patient": f"Patient/{PATIENT}",
    "medicationStatements": f"MedicationStatement?patient={PATIENT}",
    "medicationRequests": f"MedicationRequest?patient={PATIENT}",
    "medicationDispenses": f"MedicationDispense?patient={PATIENT}",
    "medicationAdministrations": f"MedicationAdministration?patient={PATIENT}",
    "observations": f"Observation?patient={PATIENT}",
    "conditions": f"Condition?patient={PATIENT}",
    "allergies": f"AllergyIntolerance?patient={PATIENT}",
}
# Without these the review could be wrong rather than incomplete: if they cannot be obtained -> 412. Administrations
# (inpatient doses, esketamine sessions) are optional: many servers do not offer the search, and a record without
# them is incomplete, which the response reports.
RECORD_REQUIRED = frozenset(
    {"patient", "medicationStatements", "medicationRequests", "medicationDispenses", "observations", "conditions"}
)
USAGE = (
    "FHIR R4 resources. Needs the patient's medication history (MedicationStatement, MedicationRequest, "
    "MedicationDispense; MedicationAdministration if available), Observations (rating-scale scores, labs), "
    "Conditions and AllergyIntolerances, "
    "through prefetch or a fhirServer with fhirAuthorization (patient/*.read or user/*.read). "
    "Hook versions: patient-view 1.0, order-select 1.0, order-sign 1.1."
)
ORDER_DRUGS = "an antidepressant, augmenting agent, esketamine, ketamine, lithium or MAOI"


@dataclass(frozen=True)
class ServiceSpec:
    id: str
    hook: str
    title: str
    purpose: str
    required_context: tuple[str, ...]
    order_scope: OrderScope
    prefetch: dict[str, str]
    required_prefetch: frozenset[str]


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        id="trd-patient-review",
        hook="patient-view",
        title="Treatment-resistant depression review",
        purpose="Reviews the whole record when the chart is opened",
        required_context=("userId", "patientId"),
        order_scope="none",
        prefetch=RECORD_PREFETCH,
        required_prefetch=RECORD_REQUIRED,
    ),
    ServiceSpec(
        id="trd-order-select",
        hook="order-select",
        title="TRD check of a selected psychiatric order",
        purpose=f"Checks a newly selected order for {ORDER_DRUGS}",
        required_context=("userId", "patientId", "selections", "draftOrders"),
        order_scope="selections",
        prefetch=RECORD_PREFETCH,
        required_prefetch=RECORD_REQUIRED,
    ),
    ServiceSpec(
        id="trd-order-sign",
        hook="order-sign",
        title="TRD check of psychiatric orders before signing",
        purpose=f"Checks the orders being signed for {ORDER_DRUGS}",
        required_context=("userId", "patientId", "draftOrders"),
        order_scope="draft-orders",
        prefetch=RECORD_PREFETCH,
        required_prefetch=RECORD_REQUIRED,
    ),
)
SERVICES_BY_ID: dict[str, ServiceSpec] = {s.id: s for s in SERVICES}


def _description(spec: ServiceSpec, catalog: RuleCatalog) -> str:
    modules = "; ".join(f"{m.title} (v{m.version})" for m in catalog.modules)
    checks = {
        "none": "trial adequacy, outcomes, TRD status and data quality, with reasons and evidence",
        "selections": "dose adequacy, contraindications, interactions with current drugs and duplicate therapy",
        "draft-orders": "dose adequacy, contraindications, interactions with current drugs and duplicate therapy",
    }[spec.order_scope]
    return f"{spec.purpose}: {checks}. Rule modules: {modules}."


def discovery_document(catalog: RuleCatalog) -> dict[str, Any]:
    return {
        "services": [
            {
                "hook": spec.hook,
                "title": spec.title,
                "description": _description(spec, catalog),
                "id": spec.id,
                "prefetch": dict(spec.prefetch),
                "usageRequirements": USAGE,
            }
            for spec in SERVICES
        ]
    }
