"""Prefetch semantics on the real server: present, missing (FHIR fallback over HTTP), null, OperationOutcome,
pagination and the 412 path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from cds.hooks.prefetch import expand_template
from tests.hooks.conftest import SPEC, MockEhr, fhir_authorization, fixture_json, hook_body, prefetch_from_example

PV = "/cds-services/trd-patient-review"
EX01 = "01-trd-two-adequate-failures.json"
OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}


def _cards(client: httpx.Client, base: str, ehr: MockEhr, body: dict[str, Any], status: int = 200) -> list[Any]:
    response = client.post(base + PV, json=body, headers=ehr.headers(PV))
    assert response.status_code == status, response.text
    return list(response.json().get("cards", [])) if status == 200 else []


def _codes(cards: list[Any]) -> list[str]:
    return [c["source"]["topic"]["code"] for c in cards if "topic" in c["source"]]


def test_expand_template_tokens() -> None:
    context = {"patientId": "123", "userId": "PractitionerRole/9", "draftOrders": {"resourceType": "Bundle"}}
    assert expand_template("Observation?patient={{context.patientId}}", context) == "Observation?patient=123"
    assert expand_template("{{userPractitionerRoleId}}", context) == "9"
    assert expand_template("Practitioner/{{userPractitionerId}}", context) is None
    assert expand_template("X?p={{context.draftOrders}}", context) is None  # only primitive fields
    assert expand_template("X?e={{context.encounterId}}", context) is None


def test_full_prefetch_gives_cards(service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr) -> None:
    base, _ = service
    cards = _cards(client, base, spec_ehr, hook_body("patient-view", "ex01-patient", prefetch_from_example(EX01)))
    assert "trd-criteria-met" in _codes(cards)


def test_missing_prefetch_is_fetched_with_the_token_and_paged(
    service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr, fhir_server: tuple[str, FastAPI]
) -> None:
    base, _ = service
    fhir_base, fhir_app = fhir_server
    full = _cards(client, base, spec_ehr, hook_body("patient-view", "ex01-patient", prefetch_from_example(EX01)))
    before = len(fhir_app.state.requests)
    partial = prefetch_from_example(EX01)
    del partial["observations"], partial["medicationStatements"]
    body = hook_body(
        "patient-view", "ex01-patient", partial, fhirServer=fhir_base, fhirAuthorization=fhir_authorization()
    )
    fetched = _cards(client, base, spec_ehr, body)
    assert [c["uuid"] for c in fetched] == [c["uuid"] for c in full]  # same answer as with full prefetch
    calls = fhir_app.state.requests[before:]
    assert {path for _, path, _ in calls} == {"/Observation", "/MedicationStatement"}  # only what was missing
    assert any("_offset=" in query for _, _, query in calls)  # followed next links (pages of 2)
    # nothing prefetched at all: everything comes from the FHIR server, same answer again
    body = hook_body("patient-view", "ex01-patient", fhirServer=fhir_base, fhirAuthorization=fhir_authorization())
    assert [c["uuid"] for c in _cards(client, base, spec_ehr, body)] == [c["uuid"] for c in full]


def test_spec_example_request(
    service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr, fhir_server: tuple[str, FastAPI]
) -> None:
    """The spec's own patient-view request: its prefetch key is not ours, so the rest comes from fhirServer."""
    base, _ = service
    body = fixture_json(SPEC / "request-patient-view.json")
    body["fhirServer"] = fhir_server[0]
    body["fhirAuthorization"]["access_token"] = fhir_authorization()["access_token"]
    assert _cards(client, base, spec_ehr, body) == []  # patient 1288992 has no record there: nothing to say
    body["fhirServer"] = "http://127.0.0.1:9"  # nothing listens: required data cannot be obtained
    _cards(client, base, spec_ehr, body, status=412)


def test_null_means_known_absent(service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr) -> None:
    base, _ = service
    nulls = dict.fromkeys(prefetch_from_example(EX01))
    assert _cards(client, base, spec_ehr, hook_body("patient-view", "ex01-patient", nulls)) == []
    empty_bundles = {k: {"resourceType": "Bundle", "type": "searchset"} for k in nulls}
    empty_bundles["patient"] = None
    assert _cards(client, base, spec_ehr, hook_body("patient-view", "ex01-patient", empty_bundles)) == []


def test_missing_without_fhir_server_is_412(service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr) -> None:
    base, _ = service
    partial = prefetch_from_example(EX01)
    del partial["observations"]
    response = client.post(
        base + PV, json=hook_body("patient-view", "ex01-patient", partial), headers=spec_ehr.headers(PV)
    )
    assert response.status_code == 412
    assert "observations" in response.json()["issue"][0]["diagnostics"]


def test_fhir_server_refusing_the_token_is_412(
    service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr, fhir_server: tuple[str, FastAPI]
) -> None:
    base, _ = service
    auth = fhir_authorization() | {"access_token": "wrong"}
    body = hook_body("patient-view", "ex01-patient", fhirServer=fhir_server[0], fhirAuthorization=auth)
    _cards(client, base, spec_ehr, body, status=412)


def test_operation_outcome_is_reported_not_read(
    service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr, fhir_server: tuple[str, FastAPI]
) -> None:
    base, _ = service
    fhir_base, fhir_app = fhir_server
    required = prefetch_from_example(EX01) | {"observations": OUTCOME}
    before = len(fhir_app.state.requests)
    body = hook_body(
        "patient-view", "ex01-patient", required, fhirServer=fhir_base, fhirAuthorization=fhir_authorization()
    )
    response = client.post(base + PV, json=body, headers=spec_ehr.headers(PV))
    assert response.status_code == 412 and "OperationOutcome" in response.text
    assert len(fhir_app.state.requests) == before  # an OperationOutcome spares the follow-up query
    in_bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": OUTCOME}]}
    optional = prefetch_from_example(EX01) | {"allergies": in_bundle}
    cards = _cards(client, base, spec_ehr, hook_body("patient-view", "ex01-patient", optional))
    assert "trd-criteria-met" in _codes(cards)
    notice = [c for c in cards if "topic" not in c["source"]]
    assert len(notice) == 1 and "allergies" in notice[0]["summary"]


def test_first_page_only_without_fhir_access_is_reported(
    service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr
) -> None:
    base, _ = service
    prefetch = prefetch_from_example(EX01)
    prefetch["allergies"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "next", "url": "http://127.0.0.1:9/AllergyIntolerance?page=2"}],
    }
    cards = _cards(client, base, spec_ehr, hook_body("patient-view", "ex01-patient", prefetch))
    assert any("could not be read (allergies)" in c["summary"] for c in cards)
