"""Mutated patients for robustness tests: generated records in which values are replaced at random by values of
the wrong type or absurd size, as a broken interface or a hand-edited export produces them. Deterministic for a
seed, so the source and compiled builds (tests/test_build.py) can evaluate the same ones in two processes."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

from cds.synthetic import generate_population

WRONG = [None, 0, 1.5, -3, True, "", "x", [], {}, [1], {"a": 1}, "2024-13-45", [None], 10**30, 2e-29, 1e300]


def _paths(node: Any, path: tuple[Any, ...], out: list[tuple[Any, ...]]) -> None:
    out.append(path)
    if isinstance(node, dict):
        for k, v in node.items():
            _paths(v, (*path, k), out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _paths(v, (*path, i), out)


def mutated_population(n: int, seed: int, mutations: int = 8) -> Iterator[dict[str, Any]]:
    """``n`` generated patients, each with ``mutations`` values replaced (never a resourceType)."""
    rng = random.Random(seed)
    for patient in generate_population(n, seed=seed):
        entries = patient.get("entry", [])
        for _ in range(mutations):
            resource = rng.choice(entries)["resource"]
            found: list[tuple[Any, ...]] = []
            _paths(resource, (), found)
            found = [p for p in found if p and p[0] != "resourceType"]
            if found:
                *parents, last = rng.choice(found)
                node = resource
                for p in parents:
                    node = node[p]
                node[last] = copy.deepcopy(rng.choice(WRONG))  # never one list in two places
        yield patient
