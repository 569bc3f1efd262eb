"""Values worked out once per Knowledge: tables and memos that readers and view builders use for every patient.
A hot reload brings a new Knowledge, whose values start afresh; the retired one's go when it does."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar
from weakref import WeakKeyDictionary

from cds.knowledge.loader import Knowledge

V = TypeVar("V")


def per_knowledge(compute: Callable[[Knowledge], V]) -> Callable[[Knowledge], V]:
    """`compute(knowledge)`, computed once per Knowledge (Knowledge compares by identity)."""
    values: WeakKeyDictionary[Knowledge, V] = WeakKeyDictionary()

    @wraps(compute)
    def get(knowledge: Knowledge) -> V:
        try:
            return values[knowledge]
        except KeyError:
            value = values[knowledge] = compute(knowledge)
            return value

    return get
