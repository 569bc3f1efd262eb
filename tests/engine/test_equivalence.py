"""durable_rules and the plain-Python reference evaluator give identical findings on every example, every
real public record and 1,000 generated patients: the engine adapter is pinned to the reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds.evaluation import Evaluation, Evaluator
from cds.render.json_contract import to_contract
from cds.synthetic import generate_population
from tests.conftest import NOW, SHARED_DATA, example_files

REAL = sorted(SHARED_DATA.glob("patients/*.json")) + sorted(SHARED_DATA.glob("ecqm-tests/*.json"))


def comparable(ev: Evaluation) -> str:
    doc = to_contract(ev)
    return json.dumps({"trials": doc["trials"], "trd": doc["trd"], "findings": doc["findings"]}, sort_keys=True)


def test_examples_and_real_records_agree(durable: Evaluator, reference: Evaluator) -> None:
    paths: list[Path] = example_files() + REAL
    for path in paths:
        data = path.read_bytes()
        assert comparable(durable.evaluate_bytes(data, NOW)) == comparable(reference.evaluate_bytes(data, NOW)), path


@pytest.mark.parametrize("chunk", range(4))
def test_generated_patients_agree(chunk: int, durable: Evaluator, reference: Evaluator) -> None:
    statuses = set()
    for i, bundle in enumerate(generate_population(250, seed=1000 + chunk)):
        facts = durable.facts(json.dumps(bundle).encode(), NOW)
        a, b = durable.evaluate_facts(facts), reference.evaluate_facts(facts)
        assert comparable(a) == comparable(b), f"seed {1000 + chunk}, patient {i}"
        statuses.add(a.trd_status)
    assert len(statuses) >= 2, "the generated population must exercise more than one TRD status"
