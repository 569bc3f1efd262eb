"""Validate a hook call (`POST /cds-services/{id}`) before any work: 400 with a clear message when it is wrong.

Strict about the CDS Hooks envelope (legacy shapes such as a draftOrders array, `Patient/` in patientId or
pre-1.0 wrapped prefetch values are refused with a message saying so); tolerant about the FHIR inside it,
which the FHIR layer reads defensively.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cds.hooks.discovery import ServiceSpec
from cds.hooks.errors import BadRequest


@dataclass(frozen=True)
class FhirAuthorization:
    access_token: str
    token_type: str
    expires_in: int
    scope: str
    subject: str
    patient: str | None

    def __repr__(self) -> str:  # the token must never reach a log
        return f"FhirAuthorization(scope={self.scope!r}, subject={self.subject!r}, access_token=<redacted>)"


@dataclass(frozen=True)
class HookRequest:
    hook: str
    hook_instance: str
    fhir_server: str | None
    fhir_authorization: FhirAuthorization | None
    context: dict[str, Any]
    prefetch: dict[str, Any]  # only the keys the client sent; a value may be None ("known absent")

    @property
    def patient_id(self) -> str:
        return str(self.context["patientId"])


def _string(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{where}{key} is required and must be a non-empty string")
    return value


def _authorization(value: Any) -> FhirAuthorization:
    if not isinstance(value, dict):
        raise BadRequest("fhirAuthorization must be an object")
    token_type = _string(value, "token_type", "fhirAuthorization.")
    if token_type.lower() != "bearer":
        raise BadRequest("fhirAuthorization.token_type must be 'Bearer'")
    expires = value.get("expires_in")
    if not isinstance(expires, int) or isinstance(expires, bool):
        raise BadRequest("fhirAuthorization.expires_in is required and must be an integer")
    patient = value.get("patient")
    return FhirAuthorization(
        access_token=_string(value, "access_token", "fhirAuthorization."),
        token_type=token_type,
        expires_in=expires,
        scope=_string(value, "scope", "fhirAuthorization."),
        subject=_string(value, "subject", "fhirAuthorization."),
        patient=patient if isinstance(patient, str) else None,
    )


def _context(spec: ServiceSpec, context: Any) -> dict[str, Any]:
    if not isinstance(context, dict):
        raise BadRequest("context is required and must be an object")
    for name in spec.required_context:
        if name not in context:
            raise BadRequest(f"context.{name} is required for the {spec.hook} hook")
    for name in ("userId", "patientId", "encounterId"):
        if name in context and (not isinstance(context[name], str) or not context[name].strip()):
            raise BadRequest(f"context.{name} must be a non-empty string")
    if "/" in context["patientId"]:
        raise BadRequest("context.patientId must be the bare Patient.id (not 'Patient/...')")
    if "/" not in context["userId"]:
        raise BadRequest("context.userId must be '[ResourceType]/[id]', e.g. 'Practitioner/123'")
    if "draftOrders" in spec.required_context:
        orders = context["draftOrders"]
        if not isinstance(orders, dict) or orders.get("resourceType") != "Bundle":
            raise BadRequest("context.draftOrders must be a FHIR Bundle (an array or other shape is not accepted)")
        if not isinstance(orders.get("entry", []), list):
            raise BadRequest("context.draftOrders.entry must be an array")
    if "selections" in spec.required_context:
        selections = context["selections"]
        if (
            not isinstance(selections, list)
            or not selections
            or not all(isinstance(s, str) and "/" in s for s in selections)
        ):
            raise BadRequest("context.selections must be a non-empty array of references like 'MedicationRequest/1'")
    return context


def _prefetch(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("prefetch must be an object")
    for key, item in value.items():
        if item is None:
            continue
        if not isinstance(item, dict):
            raise BadRequest(f"prefetch.{key} must be a FHIR resource, a Bundle or null")
        if "resourceType" not in item:
            if "resource" in item and "response" in item:
                raise BadRequest(f"prefetch.{key} uses the pre-1.0 wrapped format; send the resource itself")
            raise BadRequest(f"prefetch.{key} is not a FHIR resource (no resourceType)")
    return dict(value)


def parse_hook_request(spec: ServiceSpec, body: Any) -> HookRequest:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    hook = _string(body, "hook", "")
    if hook != spec.hook:
        raise BadRequest(f"service {spec.id!r} answers the {spec.hook!r} hook, not {hook!r}")
    hook_instance = _string(body, "hookInstance", "")
    server = body.get("fhirServer")
    if server is not None and (not isinstance(server, str) or not server.startswith(("https://", "http://"))):
        raise BadRequest("fhirServer must be an http(s) URL")
    auth = _authorization(body["fhirAuthorization"]) if body.get("fhirAuthorization") is not None else None
    if auth is not None and server is None:
        raise BadRequest("fhirServer is required when fhirAuthorization is given")
    return HookRequest(
        hook=hook,
        hook_instance=hook_instance,
        fhir_server=server.rstrip("/") if isinstance(server, str) else None,
        fhir_authorization=auth,
        context=_context(spec, body.get("context")),
        prefetch=_prefetch(body.get("prefetch")),
    )
