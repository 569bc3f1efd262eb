"""Read one patient's FHIR R4 input (Bundle of any type, a single resource, or NDJSON) into raw resources.

Only structural problems are handled here: what is not JSON or not FHIR at all raises InputError; a broken
entry inside an otherwise good input becomes a DataIssue and the rest is kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from orjson import loads  # a module global: cheaper than orjson.loads's attribute lookup, compiled

from cds.errors import InputError
from cds.facts.models import DataIssue

Resource = dict[str, Any]
# A UTF-8 byte order mark: JSON forbids it (RFC 8259 §8.1) and orjson rejects it, but editors and tools on Windows
# write it at the start of a file. It is dropped there, and only there.
BOM = b"\xef\xbb\xbf"


@dataclass
class RawInput:
    resources: list[Resource] = field(default_factory=list)
    full_urls: dict[str, Resource] = field(default_factory=dict)
    issues: list[DataIssue] = field(default_factory=list)


def _issue(ref: str, message: str) -> DataIssue:
    return DataIssue(kind="invalid_resource", ref=ref, message=message)


def _add(raw: RawInput, resource: Any, where: str, full_url: Any = None) -> None:
    if not isinstance(resource, dict):
        raw.issues.append(_issue(where, "entry has no resource object"))
        return
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raw.issues.append(_issue(where, "resource has no resourceType"))
        return
    if rtype == "Bundle":
        _add_bundle(raw, resource, where)
        return
    raw.resources.append(resource)
    if isinstance(full_url, str) and full_url:
        raw.full_urls[full_url] = resource


def _add_bundle(raw: RawInput, bundle: Resource, where: str) -> None:
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raw.issues.append(_issue(where, "Bundle.entry is not a list"))
        return
    resources, full_urls = raw.resources, raw.full_urls
    for i, entry in enumerate(entries):
        if isinstance(entry, dict):
            # The common case inline (what _add does for a well-formed entry that is not a Bundle): records hold
            # hundreds of entries.
            resource = entry.get("resource")
            if isinstance(resource, dict):
                rtype = resource.get("resourceType")
                if isinstance(rtype, str) and rtype and rtype != "Bundle":
                    resources.append(resource)
                    full_url = entry.get("fullUrl")
                    if isinstance(full_url, str) and full_url:
                        full_urls[full_url] = resource
                    continue
        here = f"{where}entry[{i}]" if where else f"entry[{i}]"
        if not isinstance(entry, dict):
            raw.issues.append(_issue(here, "Bundle entry is not an object"))
            continue
        _add(raw, entry.get("resource"), here, entry.get("fullUrl"))


def _loads(data: bytes) -> Any:
    try:
        return loads(data)
    except orjson.JSONDecodeError:
        return _NOT_JSON


_NOT_JSON = object()


def read_input(data: bytes) -> RawInput:
    """Parse bytes holding one patient's record; raise InputError only when nothing can be read."""
    data = data.removeprefix(BOM)
    if not data.strip():
        raise InputError("the input is empty")
    raw = RawInput()
    doc = _loads(data)
    if doc is _NOT_JSON:
        parsed = [_loads(line) for line in data.splitlines() if line.strip()]
        if not parsed or all(p is _NOT_JSON for p in parsed):
            raise InputError("the input is not JSON (expected a FHIR Bundle, a resource or NDJSON)")
        _add_lines(raw, parsed)
    elif isinstance(doc, dict):
        if not isinstance(doc.get("resourceType"), str):
            raise InputError("the JSON is not a FHIR resource (no resourceType)")
        _add(raw, doc, "")
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            _add(raw, item, f"item[{i}]")
    else:
        raise InputError("the JSON is not a FHIR resource or Bundle")
    if not raw.resources:
        raise InputError("no FHIR resources found in the input")
    return raw


def _add_lines(raw: RawInput, parsed: Iterable[Any]) -> None:
    for i, item in enumerate(parsed, 1):
        if item is _NOT_JSON:
            raw.issues.append(_issue(f"line[{i}]", "line is not valid JSON"))
        else:
            _add(raw, item, f"line[{i}]")


def read_lines(lines: Iterable[bytes]) -> RawInput:
    """One patient's NDJSON lines (a bulk export grouped by patient). A line that is not valid JSON becomes a
    DataIssue and the rest is kept; raises InputError only when no line holds a resource."""
    raw = RawInput()
    _add_lines(raw, [_loads(line) for line in lines])
    if not raw.resources:
        raise InputError("no FHIR resources found in the input")
    return raw


def read_resources(resources: Iterable[Any], where: str = "item") -> RawInput:
    """Already-parsed resources (a CDS Hooks prefetch) -> RawInput.
    Bundles among them are unpacked; anything that is not a resource becomes a DataIssue."""
    raw = RawInput()
    for i, item in enumerate(resources):
        _add(raw, item, f"{where}[{i}]")
    if not raw.resources:
        raise InputError("no FHIR resources found in the input")
    return raw
