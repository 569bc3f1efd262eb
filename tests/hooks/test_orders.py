"""order-select and order-sign on the real server, with the hook library's own contexts and our drugs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx

from tests.hooks.conftest import LIBRARY, MockEhr, fixture_json, hook_body, prefetch_from_example

OS, SIGN = "/cds-services/trd-order-select", "/cds-services/trd-order-sign"
EX01 = "01-trd-two-adequate-failures.json"


def _lithium_order(order_id: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": order_id,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "6448", "display": "lithium"}]
        },
        "subject": {"reference": "Patient/ex01-patient"},
        "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 300, "unit": "mg"}}], "text": "300 mg bid"}],
    }


def test_library_contexts_without_our_drugs_have_nothing_to_say(
    service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr
) -> None:
    base, _ = service
    select = fixture_json(LIBRARY / "order-select-context-R4.json")["context"]
    body = hook_body("order-select", select["patientId"], context=select)  # no prefetch, no fhirServer
    response = client.post(base + OS, json=body, headers=spec_ehr.headers(OS))
    assert response.status_code == 200 and response.json() == {"cards": []}
    sign = fixture_json(LIBRARY / "order-sign-context-labelled-R4.json")["context"]
    body = hook_body("order-sign", sign["patientId"], context=sign)
    response = client.post(base + SIGN, json=body, headers=spec_ehr.headers(SIGN))
    assert response.status_code == 200 and response.json() == {"cards": []}


def test_psychiatric_order_is_evaluated_with_the_record(
    service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr
) -> None:
    base, _ = service
    orders = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": _lithium_order("li-1")}]}
    context = {"selections": ["MedicationRequest/li-1"], "draftOrders": orders}
    without_record = hook_body("order-select", "ex01-patient", context=copy.deepcopy(context))
    assert client.post(base + OS, json=without_record, headers=spec_ehr.headers(OS)).status_code == 412
    for path, hook in ((OS, "order-select"), (SIGN, "order-sign")):
        ctx = copy.deepcopy(context) if hook == "order-select" else {"draftOrders": orders}
        body = hook_body(hook, "ex01-patient", prefetch_from_example(EX01), context=ctx)
        response = client.post(base + path, json=body, headers=spec_ehr.headers(path))
        assert response.status_code == 200
        for card in response.json()["cards"]:  # only findings about the order, or safety findings
            assert "MedicationRequest/li-1" in card["detail"] or "(safety)" in card["detail"]
