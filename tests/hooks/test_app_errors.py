"""Error answers of the real server: 400 with a clear message, 404, 413, and never a traceback."""

from __future__ import annotations

import copy
from pathlib import Path

import httpx
import pytest

from tests.hooks.conftest import LIBRARY, MockEhr, fixture_json, hook_body, prefetch_from_example

PV = "/cds-services/trd-patient-review"
OS = "/cds-services/trd-order-select"


def _post(client: httpx.Client, base: str, ehr: MockEhr, path: str, **kwargs: object) -> httpx.Response:
    return client.post(base + path, headers=ehr.headers(path), **kwargs)  # type: ignore[arg-type]


def _diagnostics(response: httpx.Response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return str(body["issue"][0]["diagnostics"])


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"", 400, "empty"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"hook": "order-sign", "hookInstance": "x", "context": {}}', 400, "answers the 'patient-view' hook"),
        (b'{"hook": "patient-view", "context": {"userId": "Practitioner/1", "patientId": "1"}}', 400, "hookInstance"),
        (b'{"hook": "patient-view", "hookInstance": "x", "context": {"userId": "Practitioner/1"}}', 400, "patientId"),
        (b'{"hook": "patient-view", "hookInstance": "x"}', 400, "context is required"),
        (
            b'{"hook": "patient-view", "hookInstance": "x", "context": {"userId": "Practitioner/1", "patientId": "1"},'
            b' "fhirAuthorization": {"access_token": "t", "token_type": "Bearer", "expires_in": 1, "scope": "s",'
            b' "subject": "c"}}',
            400,
            "fhirServer is required",
        ),
        (
            b'{"hook": "patient-view", "hookInstance": "x", "context": {"userId": "Practitioner/1", "patientId": "1"},'
            b' "prefetch": {"patient": {"response": {"status": "200 OK"}, "resource": {}}}}',
            400,
            "pre-1.0 wrapped",
        ),
    ],
)
def test_bad_requests(
    service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr, body: bytes, status: int, message: str
) -> None:
    base, _ = service
    headers = {**spec_ehr.headers(PV), "Content-Type": "application/json"}
    response = client.post(base + PV, content=body, headers=headers)
    assert response.status_code == status
    assert message in _diagnostics(response)
    assert "Traceback" not in response.text


def test_unknown_service_is_404(service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr) -> None:
    base, _ = service
    response = _post(client, base, spec_ehr, "/cds-services/nope", json=hook_body("patient-view", "1"))
    assert response.status_code == 404
    assert "nope" in _diagnostics(response)


def test_request_size_limit(service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr) -> None:
    base, _ = service
    big = hook_body("patient-view", "1", {"patient": {"resourceType": "Patient", "text": "x" * 2_100_000}})
    response = _post(client, base, spec_ehr, PV, json=big)
    assert response.status_code == 413


def test_order_select_checks_its_context(service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr) -> None:
    base, _ = service
    context = fixture_json(LIBRARY / "order-select-context-R4.json")["context"]
    as_array = copy.deepcopy(context)
    as_array["draftOrders"] = [e["resource"] for e in context["draftOrders"]["entry"]]
    response = _post(client, base, spec_ehr, OS, json=hook_body("order-select", "1", context=as_array))
    assert response.status_code == 400 and "must be a FHIR Bundle" in _diagnostics(response)
    unknown = copy.deepcopy(context)
    unknown["selections"] = ["MedicationRequest/not-there"]
    response = _post(client, base, spec_ehr, OS, json=hook_body("order-select", "1", context=unknown))
    assert response.status_code == 400 and "not in context.draftOrders" in _diagnostics(response)
    legacy_patient = hook_body("patient-view", "Patient/1", prefetch_from_example("05-remission-escitalopram.json"))
    response = _post(client, base, spec_ehr, PV, json=legacy_patient)
    assert response.status_code == 400 and "bare Patient.id" in _diagnostics(response)


def test_logs_hold_no_patient_data(service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr) -> None:
    base, log = service
    body = hook_body("patient-view", "ex05-patient", prefetch_from_example("05-remission-escitalopram.json"))
    assert _post(client, base, spec_ehr, PV, json=body).status_code == 200
    text = log.read_text()
    assert "request " in text  # request ids instead
    for secret in ("ex05-patient", "escitalopram", "fhir-access-token-for-tests"):
        assert secret not in text
