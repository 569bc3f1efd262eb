"""The FHIR fallback: fetch what prefetch did not carry from the client's `fhirServer` (R4 read or search).

Sends `Authorization: Bearer <fhirAuthorization.access_token>` (never logged, never stored), follows
`next` links (only on the same origin as fhirServer, so the token never leaves it) up to a page limit,
with a timeout on every call.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

Json = dict[str, Any]


class FetchError(Exception):
    """The data could not be obtained (network, status, not FHIR, too many pages); the message is safe to log."""


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _next_link(bundle: Json) -> str | None:
    for link in bundle.get("link", []) or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None


class FhirClient:
    def __init__(self, http: httpx.AsyncClient, max_pages: int) -> None:
        self.http = http
        self.max_pages = max_pages

    async def _get(self, url: str, token: str) -> Json:
        try:
            response = await self.http.get(
                url, headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
            )
        except httpx.TimeoutException:
            raise FetchError("the FHIR server did not answer in time") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"the FHIR server could not be reached ({type(exc).__name__})") from None
        if response.status_code == 404:
            return {"resourceType": "_NotFound"}
        if response.status_code != 200:
            raise FetchError(f"the FHIR server answered HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            raise FetchError("the FHIR server answered with something that is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
            raise FetchError("the FHIR server answered with something that is not a FHIR resource")
        return data

    async def fetch(self, base: str, relative: str, token: str) -> Json | None:
        """A read gives the resource (None when not found); a search gives one Bundle with every page's entries."""
        url = f"{base}/{relative.lstrip('/')}"
        data = await self._get(url, token)
        if data["resourceType"] == "_NotFound":
            if "?" in relative:
                raise FetchError("the FHIR server answered HTTP 404 to a search")
            return None
        return await self.follow_pages(base, data, token)

    async def follow_pages(self, base: str, data: Json, token: str) -> Json:
        """Merge the pages of a searchset Bundle into one; anything else is returned unchanged."""
        if data.get("resourceType") != "Bundle":
            return data
        entries = list(data.get("entry", []) or [])
        page, pages = data, 1
        while (next_url := _next_link(page)) is not None:
            next_url = urljoin(base + "/", next_url)
            if _origin(next_url) != _origin(base):
                raise FetchError("a next link points away from the FHIR server; not followed")
            if pages >= self.max_pages:
                raise FetchError(f"more than {self.max_pages} pages of results")
            page = await self._get(next_url, token)
            if page.get("resourceType") != "Bundle":
                raise FetchError("a next page is not a Bundle")
            entries += page.get("entry", []) or []
            pages += 1
        merged = {k: v for k, v in data.items() if k != "link"}
        merged["entry"] = entries
        return merged
