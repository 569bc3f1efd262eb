"""GET /cds-services against the real server: the spec's discovery shape, our three hooks, valid templates."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.hooks.conftest import SPEC, MockEhr, fixture_json

ALLOWED_FIELDS = {"hook", "title", "description", "id", "prefetch", "usageRequirements", "extension"}
SUBSET = re.compile(r"^[A-Za-z]+(/\{\{context\.patientId\}\}|\?patient=\{\{context\.patientId\}\})$")


def test_discovery_is_conformant(service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr) -> None:
    base, _ = service
    response = client.get(f"{base}/cds-services", headers=spec_ehr.headers("/cds-services"))
    assert response.status_code == 200
    services = response.json()["services"]
    spec_example = fixture_json(SPEC / "discovery-response.json")["services"]
    assert set().union(*(s.keys() for s in spec_example)) <= ALLOWED_FIELDS  # same vocabulary as the spec's
    assert {s["hook"] for s in services} == {"patient-view", "order-select", "order-sign"}
    for s in services:
        assert set(s) <= ALLOWED_FIELDS
        assert all(isinstance(s[k], str) and s[k] for k in ("hook", "id", "description", "title"))
        assert "Antidepressant trial adequacy" in s["description"]  # generated from the rule modules
        assert "R4" in s["usageRequirements"]
        for template in s["prefetch"].values():
            assert SUBSET.match(template), template  # reads and type-level searches on the patient only
    assert len({(s["id"], s["hook"]) for s in services}) == len(services)


def test_discovery_needs_a_jwt_for_its_own_url(
    service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr
) -> None:
    base, _ = service
    assert client.get(f"{base}/cds-services").status_code == 401
    wrong_aud = spec_ehr.headers("/cds-services", aud=f"{base}/cds-services")
    assert client.get(f"{base}/cds-services", headers=wrong_aud).status_code == 401


def test_rule_documentation_link_target(service: tuple[str, Path], client: httpx.Client) -> None:
    base, _ = service
    doc = client.get(f"{base}/rules/trd.criteria-met").json()
    assert doc["rule"] == "trd.criteria-met" and doc["finding_code"] == "trd-criteria-met"
    assert client.get(f"{base}/rules/no.such-rule").status_code == 404
