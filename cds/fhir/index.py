"""Resolve FHIR references within one patient's input: contained (#id), Type/id, fullUrl, absolute URL."""

from __future__ import annotations

from typing import Any

from cds.fhir.reader import RawInput, Resource


class ResourceIndex:
    """Built on the first lookup: most records never resolve a reference (medications name their code inline)."""

    def __init__(self, raw: RawInput) -> None:
        self._resources = list(raw.resources)
        self._by_url = dict(raw.full_urls)
        self._by_ref: dict[str, Resource] | None = None

    def _refs(self) -> dict[str, Resource]:
        if self._by_ref is None:
            by_ref: dict[str, Resource] = {}
            for res in self._resources:
                rid = res.get("id")
                if isinstance(rid, str) and rid:
                    by_ref.setdefault(f"{res['resourceType']}/{rid}", res)
            self._by_ref = by_ref
        return self._by_ref

    def resolve(self, reference: Any, context: Resource | None = None) -> Resource | None:
        if not isinstance(reference, dict):
            return None
        ref = reference.get("reference")
        if not isinstance(ref, str) or not ref:
            return None
        if ref.startswith("#"):
            for contained in (context or {}).get("contained", []) or []:
                if isinstance(contained, dict) and contained.get("id") == ref[1:]:
                    return contained
            return None
        by_ref = self._refs()
        if ref in self._by_url:
            return self._by_url[ref]
        key = reference_key(ref)
        return by_ref.get(key) if key is not None else None


def reference_key(ref: str) -> str | None:
    """ "Type/id" of a relative, absolute or versioned (``_history``) literal reference; None for other forms."""
    parts = ref.rstrip("/").split("/")
    if len(parts) < 2:
        return None
    if "_history" in parts and len(parts) >= 4:
        at = parts.index("_history")
        return f"{parts[at - 2]}/{parts[at - 1]}"
    return f"{parts[-2]}/{parts[-1]}"
