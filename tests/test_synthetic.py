"""The synthetic patient generator: deterministic, the target size, and evaluable end to end."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date

import pytest

from cds.evaluation import Evaluator
from cds.synthetic import DEFAULT_NOW, generate_patient, generate_population

MEDICATION_TYPES = {"MedicationStatement", "MedicationRequest", "MedicationDispense"}


@pytest.fixture(scope="module")
def population() -> list[bytes]:
    return [json.dumps(p).encode() for p in generate_population(200, seed=0)]


@pytest.fixture(scope="module")
def reference() -> Evaluator:
    return Evaluator(kind="reference")


def test_same_seed_gives_identical_json() -> None:
    for seed in (0, 7, 123_456):
        assert json.dumps(generate_patient(seed)) == json.dumps(generate_patient(seed))
    assert json.dumps(generate_patient(1)) != json.dumps(generate_patient(2))
    first = [json.dumps(p) for p in generate_population(3, seed=4)]
    assert first == [json.dumps(p) for p in generate_population(3, seed=4)]


def test_ids_are_unique_and_dates_follow_now() -> None:
    bundle = generate_patient(11, now=date(2030, 6, 1))
    ids = [e["resource"]["id"] for e in bundle["entry"]]
    assert len(ids) == len(set(ids))
    assert bundle["timestamp"].startswith("2030-06-01")


def test_scale_one_sizes_are_in_target_ranges(population: list[bytes]) -> None:
    counts: Counter[str] = Counter()
    for data in population[:50]:
        for entry in json.loads(data)["entry"]:
            rtype = entry["resource"].get("resourceType")
            counts["medication" if rtype in MEDICATION_TYPES else str(rtype)] += 1
    assert 40 <= counts["medication"] / 50 <= 60
    assert 30 <= counts["Observation"] / 50 <= 50
    assert 15 <= counts["Condition"] / 50 <= 25


def test_history_scale_multiplies_history() -> None:
    small = len(generate_patient(3)["entry"])
    large = len(generate_patient(3, history_scale=10)["entry"])
    assert 6 * small <= large <= 15 * small


def test_every_patient_evaluates(population: list[bytes], reference: Evaluator) -> None:
    for seed, data in enumerate(population[:50]):
        result = reference.evaluate_bytes(data, DEFAULT_NOW)
        assert result.trd_status in {"meets", "does_not_meet", "insufficient_data"}, f"seed {seed}"


def test_population_reaches_every_trd_status(population: list[bytes], reference: Evaluator) -> None:
    statuses = Counter(reference.evaluate_bytes(data, DEFAULT_NOW).trd_status for data in population)
    for status in ("meets", "does_not_meet", "insufficient_data"):
        assert statuses[status] >= 5, statuses
