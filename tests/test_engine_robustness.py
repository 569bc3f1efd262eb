"""Broken values anywhere in a record never fail the evaluation: a malformed resource becomes a data-quality
finding and the rest of the patient is evaluated (generated patients with values of the wrong type or size)."""

from __future__ import annotations

import json

from cds.evaluation import Evaluator
from cds.synthetic import DEFAULT_NOW
from tests.mutation import mutated_population


def test_mutated_records_are_evaluated(durable: Evaluator) -> None:
    for patient in mutated_population(120, seed=5, mutations=12):
        evaluation = durable.evaluate_bytes(json.dumps(patient).encode(), DEFAULT_NOW)
        assert evaluation.trd_status in {"meets", "does_not_meet", "insufficient_data"}
