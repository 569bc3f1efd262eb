"""A tiny read-only FHIR R4 server over a folder of one-patient Bundles, for development and tests only.

`cds serve --dev --examples examples/` mounts it at /dev-fhir so the service's FHIR fallback can be tried on
the bundled examples. It answers `GET /{type}/{id}` and `GET /{type}?patient={id}` (searchset Bundles,
paged by `_count`, default 50, with `next` links); when built with a token it requires that bearer token.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response

from cds.errors import InputError
from cds.fhir.elements import resource_ref
from cds.fhir.reader import read_input

Json = dict[str, Any]
FHIR_JSON = "application/fhir+json"


class PatientFiles:
    """Resources of each patient file, found by the file's Patient.id."""

    def __init__(self, folder: Path) -> None:
        self.by_ref: dict[str, Json] = {}
        self.by_patient: dict[str, dict[str, list[Json]]] = defaultdict(lambda: defaultdict(list))
        for path in sorted(folder.glob("*.json")):
            try:
                raw = read_input(path.read_bytes())
            except InputError:
                continue
            patients = [r for r in raw.resources if r.get("resourceType") == "Patient" and r.get("id")]
            if len(patients) != 1:
                continue
            pid = str(patients[0]["id"])
            for resource in raw.resources:
                ref = resource_ref(resource)
                if ref:
                    self.by_ref.setdefault(ref, resource)
                self.by_patient[pid][str(resource["resourceType"])].append(resource)

    def search(self, rtype: str, patient: str) -> list[Json]:
        return list(self.by_patient.get(patient, {}).get(rtype, []))


def _fhir(data: Json, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type=FHIR_JSON)


def _not_found(message: str) -> Response:
    return _fhir(
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "not-found", "diagnostics": message}],
        },
        404,
    )


def create_dev_fhir_app(folder: Path, token: str | None = None, page_size: int = 50) -> FastAPI:
    files = PatientFiles(folder)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.requests = []  # (method, path, query) of each call, for tests

    def authorised(request: Request) -> bool:
        return token is None or request.headers.get("authorization") == f"Bearer {token}"

    @app.get("/{rtype}/{rid}")
    async def read(rtype: str, rid: str, request: Request) -> Response:
        app.state.requests.append(("GET", request.url.path, str(request.url.query)))
        if not authorised(request):
            return Response(status_code=401)
        resource = files.by_ref.get(f"{rtype}/{rid}")
        return _fhir(resource) if resource is not None else _not_found(f"{rtype}/{rid} not found")

    @app.get("/{rtype}")
    async def search(rtype: str, request: Request) -> Response:
        app.state.requests.append(("GET", request.url.path, str(request.url.query)))
        if not authorised(request):
            return Response(status_code=401)
        patient = request.query_params.get("patient", "").removeprefix("Patient/")
        count = int(request.query_params.get("_count", page_size))
        offset = int(request.query_params.get("_offset", 0))
        matches = files.search(rtype, patient)
        page = matches[offset : offset + count]
        bundle: Json = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(matches),
            "link": [{"relation": "self", "url": str(request.url)}],
            "entry": [{"fullUrl": f"{rtype}/{r.get('id')}", "resource": r, "search": {"mode": "match"}} for r in page],
        }
        if offset + count < len(matches):
            base = str(request.url).split("?")[0]
            next_url = f"{base}?patient={patient}&_count={count}&_offset={offset + count}"
            bundle["link"].append({"relation": "next", "url": next_url})
        return _fhir(bundle)

    return app
