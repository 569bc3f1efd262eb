"""ValueSets with stored expansions from fhir_profiles/valuesets: membership tests by system|code."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from cds.errors import KnowledgeError

_ICD10 = {
    "http://hl7.org/fhir/sid/icd-10-cm",
    "http://hl7.org/fhir/sid/icd-10",
    "urn:oid:2.16.840.1.113883.6.90",
}


def normalise(system: str, code: str) -> str:
    """One key per concept: ICD-10 codes compare without their dot (VSAC stores F331, records F33.1)."""
    if system in _ICD10:
        system, code = "http://hl7.org/fhir/sid/icd-10-cm", code.replace(".", "").upper()
    return f"{system}|{code.strip()}"


class ValueSetIndex:
    def __init__(self, directory: Path) -> None:
        self.members: dict[str, frozenset[str]] = {}
        self.prefixes: dict[str, tuple[str, ...]] = {}
        self.urls: dict[str, str] = {}
        self._by_code: dict[str, set[str]] = {}
        self._by_prefix: dict[str, set[str]] = {}
        self._cache: dict[str, frozenset[str]] = {}
        if not directory.is_dir():
            return
        for path in sorted(directory.glob("*.json")):
            try:
                vs = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise KnowledgeError(f"not a readable ValueSet: {exc}", str(path)) from None
            vid = str(vs.get("id") or path.stem)
            codes = {
                normalise(str(c.get("system", "")), str(c.get("code", "")))
                for c in vs.get("expansion", {}).get("contains", [])
            }
            self.members[vid] = frozenset(codes)
            self.urls[vid] = str(vs.get("url", ""))
            # `is-a` filters on ICD-10: every code below the given category (F41 covers F41.1, F41.9, ...).
            self.prefixes[vid] = tuple(
                normalise(str(inc.get("system", "")), str(f.get("value", "")))
                for inc in vs.get("compose", {}).get("include", [])
                for f in inc.get("filter", [])
                if f.get("op") == "is-a" and f.get("property") == "concept" and inc.get("system") in _ICD10
            )

    def contains_any(self, valueset_id: str, keys: Iterable[str]) -> bool:
        members = self.members.get(valueset_id)
        if not members:
            return False
        prefixes = self.prefixes.get(valueset_id, ())
        for key in keys:
            system, _, code = key.partition("|")
            norm = normalise(system, code)
            if norm in members or (prefixes and norm.startswith(prefixes)):
                return True
        return False

    def matching(self, keys: Iterable[str], candidates: Iterable[str]) -> tuple[str, ...]:
        """Which of the candidate value sets contain any of the codes (in the candidates' order)."""
        hits: set[str] = set()
        for key in keys:
            hits |= self._sets_of(key)
        return tuple(vid for vid in candidates if vid in hits)

    def _sets_of(self, key: str) -> frozenset[str]:
        """Every value set that holds one code, exactly or below an ICD-10 category; cached (records repeat codes)."""
        cached = self._cache.get(key)
        if cached is None:
            if not self._by_code:
                for vid, members in self.members.items():
                    for member in members:
                        self._by_code.setdefault(member, set()).add(vid)
                for vid, prefixes in self.prefixes.items():
                    for prefix in prefixes:
                        self._by_prefix.setdefault(prefix, set()).add(vid)
            system, _, code = key.partition("|")
            norm = normalise(system, code)
            found = set(self._by_code.get(norm, ()))
            if self._by_prefix:
                head = norm.split("|", 1)[0] + "|"
                body = norm[len(head) :]
                for n in range(1, len(body) + 1):
                    found |= self._by_prefix.get(head + body[:n], set())
            cached = frozenset(found)
            if len(self._cache) < 100_000:
                self._cache[key] = cached
        return cached
