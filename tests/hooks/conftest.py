"""Session-scoped real servers and a mock EHR (JWT signer) for the CDS Hooks tests."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from cds.hooks.dev_fhir import create_dev_fhir_app
from tests.hooks.servers import postgres_cluster, service_process, thread_server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FIXTURES = Path("/work/shared/cds-hooks/fixtures")
SPEC = FIXTURES / "spec-2.0.1"
LIBRARY = FIXTURES / "hooks-library-1.0.1"
PUBLIC_BASE = "https://cds.example.org"  # the spec example JWT's aud is on this host
SPEC_ISSUER = "https://fhir-ehr.example.com/"
JKU_ISSUER = "https://ehr-two.example.net"
TENANT = "2ddd6c3a-8e9a-44c6-a305-52111ad302a2"
FHIR_TOKEN = "fhir-access-token-for-tests"


def fixture_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class MockEhr:
    """Signs CDS Hooks client JWTs the way an EHR does (aud = the URL it calls)."""

    key: Any
    kid: str
    alg: str
    iss: str
    jku: str | None = None

    def token(self, path: str, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.iss,
            "aud": PUBLIC_BASE + path,
            "exp": now + 300,
            "iat": now,
            "jti": str(uuid.uuid4()),
            "tenant": TENANT,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        header: dict[str, Any] = {"alg": self.alg, "typ": "JWT", "kid": self.kid}
        if self.jku:
            header["jku"] = self.jku
        return jwt.encode(header, claims, self.key, algorithms=[self.alg])

    def headers(self, path: str, **overrides: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(path, **overrides)}"}


@pytest.fixture(scope="session")
def spec_ehr() -> MockEhr:
    """The EHR of the spec's JWT example, signing with the published example private key."""
    key = ECKey.import_key(fixture_json(SPEC / "jwk-private-PUBLISHED-EXAMPLE-ONLY.json"))
    return MockEhr(key=key, kid="example-kid", alg="ES384", iss=SPEC_ISSUER, jku="https://fhir-ehr.example.com/jwk_uri")


@pytest.fixture(scope="session")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-test-1", "alg": "RS384", "use": "sig"})


@pytest.fixture(scope="session")
def jwks_url(rsa_key: RSAKey) -> Iterator[str]:
    """A real HTTP server publishing the second EHR's JWK Set (fetched through an allow-listed jku)."""
    app = FastAPI()
    public = KeySet([rsa_key]).as_dict(private=False)

    @app.get("/.well-known/jwks.json")
    async def jwks() -> JSONResponse:
        return JSONResponse(public)

    with thread_server(app) as base:
        yield f"{base}/.well-known/jwks.json"


@pytest.fixture(scope="session")
def jku_ehr(rsa_key: RSAKey, jwks_url: str) -> MockEhr:
    return MockEhr(key=rsa_key, kid="rsa-test-1", alg="RS384", iss=JKU_ISSUER, jku=jwks_url)


@pytest.fixture(scope="session")
def fhir_server() -> Iterator[tuple[str, FastAPI]]:
    """A FHIR-like server over the example bundles; pages of 2 so that paging is exercised."""
    app = create_dev_fhir_app(EXAMPLES, token=FHIR_TOKEN, page_size=2)
    with thread_server(app) as base:
        yield base, app


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cds-hooks")


def service_settings(workdir: Path, jwks_url: str, db_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "public_base_url": PUBLIC_BASE,
        "feedback_db_url": db_url,
        "issuers": [
            {"iss": SPEC_ISSUER, "jwks_file": str(SPEC / "jwks-public.json"), "tenants": [TENANT]},
            {"iss": JKU_ISSUER, "jku": [jwks_url]},
        ],
        "fhir_timeout_seconds": 2.0,
        "max_request_bytes": 2_000_000,
        "log_level": "INFO",
        "issued_cards_flush_seconds": 0,
        **extra,
    }


@pytest.fixture(scope="session")
def sqlite_url(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'feedback.sqlite3'}"


@pytest.fixture(scope="session")
def service(workdir: Path, jwks_url: str, sqlite_url: str) -> Iterator[tuple[str, Path]]:
    """The real service (SQLite feedback store, JWT auth) on loopback: (base URL, its log file)."""
    with service_process(service_settings(workdir, jwks_url, sqlite_url), workdir) as running:
        yield running


@pytest.fixture(scope="session")
def postgres_url(workdir: Path) -> Iterator[str]:
    with postgres_cluster(workdir) as url:
        yield url


@pytest.fixture(scope="session")
def pg_service(workdir: Path, jwks_url: str, postgres_url: str) -> Iterator[tuple[str, Path]]:
    with service_process(service_settings(workdir, jwks_url, postgres_url), workdir) as running:
        yield running


@pytest.fixture()
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30.0) as c:
        yield c


def example_resources(name: str) -> list[dict[str, Any]]:
    bundle = fixture_json(EXAMPLES / name)
    return [e["resource"] for e in bundle["entry"] if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


PREFETCH_KEYS = {
    "Patient": "patient",
    "MedicationStatement": "medicationStatements",
    "MedicationRequest": "medicationRequests",
    "MedicationDispense": "medicationDispenses",
    "MedicationAdministration": "medicationAdministrations",
    "Observation": "observations",
    "Condition": "conditions",
    "AllergyIntolerance": "allergies",
}


def prefetch_from_example(name: str) -> dict[str, Any]:
    """What a conformant EHR would prefetch for our templates, built from an example bundle."""
    resources = example_resources(name)
    prefetch: dict[str, Any] = {}
    for rtype, key in PREFETCH_KEYS.items():
        found = [r for r in resources if r.get("resourceType") == rtype]
        if rtype == "Patient":
            prefetch[key] = found[0] if found else None
        else:
            prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in found]}
    return prefetch


def hook_body(hook: str, patient: str, prefetch: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": patient, **extra.pop("context", {})},
        **extra,
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def fhir_authorization() -> dict[str, Any]:
    return {
        "access_token": FHIR_TOKEN,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "trd-cds",
    }
