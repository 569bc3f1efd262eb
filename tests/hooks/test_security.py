"""JWT bearer validation on the real server: every failure is a bare 401; CORS preflight needs no JWT."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import httpx
from joserfc import jwt
from joserfc.jwk import OctKey

from tests.hooks.conftest import PUBLIC_BASE, SPEC, TENANT, MockEhr, hook_body, prefetch_from_example

SERVICE = "/cds-services/trd-patient-review"


def _call(client: httpx.Client, base: str, headers: dict[str, str], path: str = SERVICE) -> httpx.Response:
    body = hook_body("patient-view", "ex05-patient", prefetch_from_example("05-remission-escitalopram.json"))
    return client.post(base + path, json=body, headers=headers)


def _assert_bare_401(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.content == b""
    assert response.headers["www-authenticate"] == "Bearer"


def test_spec_example_jwt_is_rejected_as_expired(service: tuple[str, Path], client: httpx.Client) -> None:
    base, log = service
    token = (SPEC / "jwt-example-ES384-expired.txt").read_text().strip()
    # the example's aud is https://cds.example.org/cds-services/some-service: call exactly that URL
    response = client.post(f"{base}/cds-services/some-service", json={}, headers={"Authorization": f"Bearer {token}"})
    _assert_bare_401(response)
    assert "expired" in log.read_text()  # the reason is logged, not returned
    assert token not in log.read_text()


def test_fresh_jwt_signed_with_the_example_key_is_accepted(
    service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr
) -> None:
    base, _ = service
    assert _call(client, base, spec_ehr.headers(SERVICE)).status_code == 200
    # the same claims as the spec's example, fresh: passes authentication, then 404 for the unknown service
    fresh = spec_ehr.headers("/cds-services/some-service")
    assert client.post(f"{base}/cds-services/some-service", json={}, headers=fresh).status_code == 404


def test_allow_listed_jku_with_rs384(service: tuple[str, Path], client: httpx.Client, jku_ehr: MockEhr) -> None:
    base, _ = service
    assert _call(client, base, jku_ehr.headers(SERVICE)).status_code == 200


def test_bad_tokens_get_a_bare_401(service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr) -> None:
    base, _ = service
    now = int(time.time())
    cases = {
        "no token": {},
        "not a JWT": {"Authorization": "Bearer not-a-jwt"},
        "wrong aud": spec_ehr.headers(SERVICE, aud=PUBLIC_OTHER),
        "aud of another service": spec_ehr.headers("/cds-services/trd-order-sign"),
        "expired": spec_ehr.headers(SERVICE, exp=now - 600, iat=now - 900),
        "issued in the future": spec_ehr.headers(SERVICE, iat=now + 600, exp=now + 900),
        "missing jti": spec_ehr.headers(SERVICE, jti=None),
        "missing exp": spec_ehr.headers(SERVICE, exp=None),
        "unknown issuer": spec_ehr.headers(SERVICE, iss="https://evil.example.com/"),
        "tenant not allowed": spec_ehr.headers(SERVICE, tenant="another-tenant"),
    }
    for name, headers in cases.items():
        response = _call(client, base, headers)
        assert response.status_code == 401, name
        _assert_bare_401(response)


def test_symmetric_and_none_algorithms_are_refused(
    service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr
) -> None:
    base, _ = service
    now = int(time.time())
    claims = {"iss": spec_ehr.iss, "aud": PUBLIC_BASE + SERVICE, "exp": now + 300, "iat": now, "jti": f"x-{now}"}
    claims["tenant"] = TENANT
    hs = jwt.encode({"alg": "HS256", "typ": "JWT", "kid": "example-kid"}, claims, OctKey.generate_key(256))
    _assert_bare_401(_call(client, base, {"Authorization": f"Bearer {hs}"}))

    def b64(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': 'example-kid'})}.{b64(claims)}."
    _assert_bare_401(_call(client, base, {"Authorization": f"Bearer {unsigned}"}))


def test_replayed_jti_is_refused(service: tuple[str, Path], client: httpx.Client, spec_ehr: MockEhr) -> None:
    base, _ = service
    headers = spec_ehr.headers(SERVICE)
    assert _call(client, base, headers).status_code == 200
    _assert_bare_401(_call(client, base, headers))


def test_cors_preflight_needs_no_jwt(service: tuple[str, Path], client: httpx.Client) -> None:
    base, _ = service
    response = client.options(
        base + SERVICE,
        headers={
            "Origin": "https://ehr.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "https://ehr.example.org")
    assert "POST" in response.headers["access-control-allow-methods"]


PUBLIC_OTHER = "https://cds.example.org/cds-services/some-other-service"
