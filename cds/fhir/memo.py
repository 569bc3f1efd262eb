"""Memos for pure functions of parsed FHIR JSON: records, and the patients of a population, repeat the same few
hundred concepts (medications, observation codes, diagnosis codes, status codings), so each distinct one is
worked out once per process (and, when the answer depends on the knowledge, once per Knowledge:
`per_knowledge(lambda _k: ConceptMemo())`, cds/knowledge/cache.py).

Keys are the compact JSON serialisation of the value, exact for what a JSON parser produces."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import orjson
from orjson import dumps  # a module global: cheaper than orjson.dumps's attribute lookup, compiled

V = TypeVar("V")

# Exotic values that orjson would otherwise serialise like a string (dates, str subclasses) make the key fail.
_KEY_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
# Distinct values kept per memo. A full memo is emptied and refills with what comes next: memory stays bounded
# over a population of any size (screening 100k patients grew each process by ~200 MB with a 50,000-entry memo of
# Dosage instructions, which carry per-patient dates), while the few hundred concepts that recur stay cached.
MEMO_LIMIT = 4096


def json_key(value: Any) -> bytes | None:
    """A hashable key for a parsed JSON value (its compact serialisation); None when it has no JSON form."""
    try:
        return dumps(value, option=_KEY_OPTIONS)
    except TypeError:
        return None


class ConceptMemo(Generic[V]):
    """What a pure function returns for each distinct JSON value (a CodeableConcept, mostly): records, and the
    patients of a population, repeat the same few hundred concepts, so each is worked out once per process.
    The function is passed at each call so that the memo holds no reference to the knowledge it depends on."""

    def __init__(self, limit: int = MEMO_LIMIT) -> None:
        self._limit = limit
        self._values: dict[bytes, V] = {}

    def get(self, value: Any, compute: Callable[[Any], V]) -> V:
        key = json_key(value)
        if key is None:
            return compute(value)
        try:
            return self._values[key]
        except KeyError:
            result = compute(value)
            if len(self._values) >= self._limit:
                self._values.clear()
            self._values[key] = result
            return result
