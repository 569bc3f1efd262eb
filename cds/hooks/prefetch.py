"""Prefetch exactly as CDS Hooks 2.0 says, key by key, when the request has key K as:

* absent: fetch it from `fhirServer` with the `fhirAuthorization` token; if impossible and K is required: 412;
* `null`: "no data" (the client ran the query and found nothing);
* a Bundle (possibly empty): use its entries; follow `next` pages when we may call the FHIR server, else
  report the data as partial;
* an OperationOutcome, or a Bundle holding an error OperationOutcome: report it, never read it as data;
  412 if K is required.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

from cds.hooks.discovery import ServiceSpec
from cds.hooks.errors import PreconditionFailed
from cds.hooks.fhir_client import FetchError, FhirClient
from cds.hooks.requests import HookRequest

Json = dict[str, Any]
_TOKEN = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}


@dataclass
class PrefetchResult:
    data: list[Json] = field(default_factory=list)  # resources and Bundles for the evaluator
    problems: dict[str, str] = field(default_factory=dict)  # optional keys we could not (fully) obtain
    fetched: list[str] = field(default_factory=list)  # keys fetched from the FHIR server


def expand_template(template: str, context: dict[str, Any]) -> str | None:
    """Replace {{context.x}} and the user tokens; None when a token cannot be filled (e.g. no such field)."""
    missing = False

    def sub(m: re.Match[str]) -> str:
        nonlocal missing
        token = m.group(1)
        value: Any = None
        if token.startswith("context."):
            value = context.get(token.removeprefix("context."))
        elif token in _USER_TOKENS:
            user = context.get("userId")
            if isinstance(user, str) and user.startswith(_USER_TOKENS[token] + "/"):
                value = user.split("/", 1)[1]
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            missing = True
            return ""
        return str(value)

    expanded = _TOKEN.sub(sub, template)
    return None if missing else expanded


def _is_error_outcome(resource: Json) -> bool:
    issues = resource.get("issue", []) or []
    return any(isinstance(i, dict) and i.get("severity") in ("error", "fatal") for i in issues) or not issues


def _without_outcomes(bundle: Json) -> tuple[Json, bool, bool]:
    """(bundle without OperationOutcome entries, had an error outcome, had other entries)."""
    kept, error = [], False
    for entry in bundle.get("entry", []) or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "OperationOutcome":
            error = error or _is_error_outcome(resource)
            continue
        kept.append(entry)
    cleaned = dict(bundle)
    cleaned["entry"] = kept
    return cleaned, error, bool(kept)


def _has_next(bundle: Json) -> bool:
    return any(isinstance(link, dict) and link.get("relation") == "next" for link in bundle.get("link", []) or [])


class PrefetchResolver:
    def __init__(self, client: FhirClient | None, timeout_seconds: float) -> None:
        self.client = client
        self.timeout = timeout_seconds

    def _can_fetch(self, request: HookRequest) -> bool:
        return self.client is not None and request.fhir_server is not None and request.fhir_authorization is not None

    async def _fetch(self, request: HookRequest, query: str) -> Json | None:
        assert self.client is not None and request.fhir_server and request.fhir_authorization
        return await self.client.fetch(request.fhir_server, query, request.fhir_authorization.access_token)

    async def _use(self, request: HookRequest, key: str, value: Json) -> tuple[Json | None, str | None]:
        """A prefetched value -> (data, problem)."""
        if value.get("resourceType") == "OperationOutcome":
            return None, "the EHR reported an error (OperationOutcome) instead of data"
        if value.get("resourceType") != "Bundle":
            return value, None
        bundle, error, has_data = _without_outcomes(value)
        if error and not has_data:
            return None, "the EHR reported an error (OperationOutcome) instead of data"
        problem = "the EHR reported an error for part of the data" if error else None
        if _has_next(value):
            if not self._can_fetch(request):
                return bundle, "only the first page was prefetched and the FHIR server cannot be called"
            assert self.client is not None and request.fhir_server and request.fhir_authorization
            try:
                bundle = await self.client.follow_pages(
                    request.fhir_server, value, request.fhir_authorization.access_token
                )
                bundle, _, _ = _without_outcomes(bundle)
            except FetchError as exc:
                return bundle, f"further pages could not be fetched: {exc}"
        return bundle, problem

    async def resolve(self, spec: ServiceSpec, request: HookRequest) -> PrefetchResult:
        result = PrefetchResult()
        errors: dict[str, str] = {}
        to_fetch: dict[str, str] = {}
        for key, template in spec.prefetch.items():
            if key in request.prefetch:
                value = request.prefetch[key]
                if value is None:
                    continue  # known absent
                data, problem = await self._use(request, key, value)
                if data is not None:
                    result.data.append(data)
                if problem is not None:
                    (errors if data is None else result.problems)[key] = problem
                continue
            query = expand_template(template, request.context)
            if query is None:
                errors[key] = "its query template could not be filled from the context"
            elif not self._can_fetch(request):
                errors[key] = "it was not prefetched and no fhirServer with fhirAuthorization was given"
            else:
                to_fetch[key] = query
        if to_fetch:
            keys = list(to_fetch)
            try:
                async with asyncio.timeout(self.timeout):
                    outcomes = await asyncio.gather(
                        *(self._fetch(request, to_fetch[k]) for k in keys), return_exceptions=True
                    )
            except TimeoutError:
                outcomes = [FetchError("the FHIR server did not answer in time")] * len(keys)
            for key, outcome in zip(keys, outcomes, strict=True):
                if isinstance(outcome, FetchError):
                    errors[key] = str(outcome)
                elif isinstance(outcome, BaseException):
                    errors[key] = f"fetching failed ({type(outcome).__name__})"
                elif outcome is not None:
                    data, problem = await self._use(request, key, outcome)
                    result.fetched.append(key)
                    if data is not None:
                        result.data.append(data)
                    if problem is not None:
                        (errors if data is None else result.problems)[key] = problem
        for key, problem in errors.items():
            if key in spec.required_prefetch:
                raise PreconditionFailed(f"required data {key!r} could not be obtained: {problem}")
            result.problems[key] = problem
        return result
