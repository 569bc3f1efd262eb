"""JWT bearer authentication of CDS clients (CDS Hooks 2.0 §Trusting CDS Clients).

Accepted only when: `iss` is allow-listed; the key comes from that issuer's JWKS file or from a `jku` on that
issuer's allow-list (never an arbitrary URL); `alg` is an allowed asymmetric algorithm (ES384/RS384 by
default; never `none` or HS*); `kid` names a key; the signature verifies; `aud` is exactly the URL called;
`exp` is not past and `iat` not in the future (with clock skew); `jti` is present and never seen before;
`tenant` is allow-listed when the issuer lists tenants. Any failure is a bare 401: the reason goes to the log
(with iss and jti, never the token), not to the caller.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from cds.hooks.settings import HookSettings, TrustedIssuer

log = logging.getLogger("cds.hooks.security")
JWKS_CACHE_SECONDS = 300.0

JtiRecorder = Callable[[str, datetime], Awaitable[bool]]


class Unauthorized(Exception):
    """Authentication failed; the message is for the server log only."""


@dataclass(frozen=True)
class Caller:
    iss: str
    tenant: str | None
    jti: str


class MemoryJtiCache:
    """Per-process replay cache (use the database cache when several workers serve the same clients)."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    async def remember(self, key: str, expires_at: datetime) -> bool:
        now = time.time()
        if len(self._seen) > 10_000:
            self._seen = {k: exp for k, exp in self._seen.items() if exp > now}
        if key in self._seen and self._seen[key] > now:
            return False
        self._seen[key] = expires_at.timestamp()
        return True


class Authenticator:
    def __init__(self, settings: HookSettings, http: httpx.AsyncClient, remember_jti: JtiRecorder) -> None:
        self.settings = settings
        self.http = http
        self.remember_jti = remember_jti
        self.issuers = {i.iss: i for i in settings.issuers}
        self._file_keys: dict[str, KeySet] = {}
        self._jku_keys: dict[str, tuple[float, KeySet]] = {}
        for issuer in settings.issuers:
            if issuer.jwks_file is not None:
                self._file_keys[issuer.iss] = KeySet.import_key_set(
                    json.loads(issuer.jwks_file.read_text(encoding="utf-8"))
                )

    async def _fetch_jku(self, url: str, force: bool) -> KeySet:
        cached = self._jku_keys.get(url)
        if cached is not None and not force and time.monotonic() - cached[0] < JWKS_CACHE_SECONDS:
            return cached[1]
        if cached is not None and force and time.monotonic() - cached[0] < 10:
            return cached[1]  # refetch for an unknown kid at most every 10 s
        try:
            response = await self.http.get(url, timeout=self.settings.jwks_timeout_seconds)
            response.raise_for_status()
            keys = KeySet.import_key_set(response.json())
        except (httpx.HTTPError, ValueError, JoseError) as exc:
            raise Unauthorized(f"JWKS at the allow-listed jku could not be read ({type(exc).__name__})") from None
        self._jku_keys[url] = (time.monotonic(), keys)
        return keys

    async def _keys(self, issuer: TrustedIssuer, header: dict[str, Any]) -> KeySet:
        jku = header.get("jku")
        kid = header["kid"]
        if jku is not None:
            if jku not in issuer.jku:
                if issuer.iss in self._file_keys and not issuer.jku:
                    return self._file_keys[issuer.iss]  # a jku we do not fetch; the key on record must verify
                raise Unauthorized("jku is not on the issuer's allow-list")
            keys = await self._fetch_jku(jku, force=False)
            if not any(k.kid == kid for k in keys.keys):
                keys = await self._fetch_jku(jku, force=True)
            return keys
        if issuer.iss in self._file_keys:
            return self._file_keys[issuer.iss]
        if len(issuer.jku) == 1:
            return await self._fetch_jku(issuer.jku[0], force=False)
        raise Unauthorized("no key on record for the issuer and no jku in the token")

    async def authenticate(self, authorization: str | None, audience: str) -> Caller:
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("no bearer token")
        token = authorization[len("Bearer ") :].strip()
        try:
            unverified = jws.extract_compact(token.encode())
            header = dict(unverified.protected)
            claims = json.loads(unverified.payload)
        except (JoseError, ValueError, TypeError, UnicodeDecodeError):
            raise Unauthorized("not a compact JWS") from None
        if not isinstance(claims, dict):
            raise Unauthorized("claims are not an object")
        alg = header.get("alg")
        if alg not in self.settings.algorithms:
            raise Unauthorized(f"algorithm {alg!r} not allowed")
        if not isinstance(header.get("kid"), str) or not header["kid"]:
            raise Unauthorized("no kid in the header")
        if header.get("typ", "JWT") != "JWT":
            raise Unauthorized("typ is not JWT")
        issuer = self.issuers.get(str(claims.get("iss")))
        if issuer is None:
            raise Unauthorized("issuer not on the allow-list")
        keys = await self._keys(issuer, header)
        if not any(k.kid == header["kid"] for k in keys.keys):
            raise Unauthorized("no key with this kid")
        try:
            verified = jwt.decode(token, keys, algorithms=[alg])
        except (JoseError, ValueError):
            raise Unauthorized("signature does not verify") from None
        return await self._check_claims(issuer, dict(verified.claims), audience)

    async def _check_claims(self, issuer: TrustedIssuer, claims: dict[str, Any], audience: str) -> Caller:
        now = time.time()
        skew = self.settings.clock_skew_seconds
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if audience not in audiences:
            raise Unauthorized("aud is not the URL called")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or isinstance(exp, bool) or exp < now - skew:
            raise Unauthorized("expired or no exp")
        if not isinstance(iat, int | float) or isinstance(iat, bool) or iat > now + skew:
            raise Unauthorized("no iat or issued in the future")
        if exp - iat > self.settings.max_token_lifetime_seconds:
            raise Unauthorized("token lifetime longer than allowed")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise Unauthorized("no jti")
        tenant = claims.get("tenant")
        if issuer.tenants and tenant not in issuer.tenants:
            raise Unauthorized("tenant not on the allow-list")
        key = hashlib.sha256(f"{issuer.iss}\x00{jti}".encode()).hexdigest()
        if not await self.remember_jti(key, datetime.fromtimestamp(exp + skew, UTC)):
            raise Unauthorized("jti replayed")
        return Caller(iss=issuer.iss, tenant=tenant if isinstance(tenant, str) else None, jti=jti)
