"""Real public records (Synthea, eCQM test patients, FHIR spec examples) evaluate without error."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.evaluation import Evaluator
from tests.conftest import NOW, SHARED_DATA

FILES = (
    sorted(SHARED_DATA.glob("patients/*.json"))
    + sorted(SHARED_DATA.glob("ecqm-tests/*.json"))
    + sorted(SHARED_DATA.glob("fhir-examples/*.json"))
)

pytestmark = pytest.mark.skipif(not FILES, reason="shared/data is not beside the repository")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem[:40])
def test_real_record_evaluates(path: Path, durable: Evaluator) -> None:
    ev = durable.evaluate_path(path, NOW)
    assert ev.trd_status in {"meets", "does_not_meet", "insufficient_data"}
    for t in ev.trials:
        assert t.adequacy in {"adequate", "inadequate_dose", "inadequate_duration", "unknown"}


def test_cms128_desipramine_dispense_is_recognised(durable: Evaluator) -> None:
    path = SHARED_DATA / "patients" / "tests-925b4f30-ea5c-47c3-a24f-8bfcec5dcdf6-bundle.json"
    ev = durable.evaluate_path(path, NOW)
    assert {t.trial.ingredient for t in ev.trials} == {"desipramine"}
    # 2023-2024 prescription without a dose: unknown, never inadequate; a 10-day fill is too short whatever its dose.
    assert [(t.trial.start.isoformat() if t.trial.start else None, t.adequacy) for t in ev.trials] == [
        ("2023-01-01", "unknown"),
        ("2025-01-01", "inadequate_duration"),
    ]


def test_synthea_component_code_sertraline_recognised_by_name(durable: Evaluator) -> None:
    path = SHARED_DATA / "patients" / "Eliseo_Cummings_55c373ad-af55-46ed-8f69-9c7a40a89d46.json"
    ev = durable.evaluate_path(path, NOW)
    assert "sertraline" in {t.trial.ingredient for t in ev.trials}


def test_out_of_range_phq9_is_a_data_quality_finding(durable: Evaluator) -> None:
    path = SHARED_DATA / "patients" / "tests-01083d96-9f99-4138-824d-f4a0eab21f75-bundle.json"
    ev = durable.evaluate_path(path, NOW)
    assert ev.data_quality.get("score_out_of_range") == 1
    assert any(f.code == "data-quality-score-out-of-range" for f in ev.findings)
