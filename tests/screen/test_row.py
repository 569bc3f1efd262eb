"""The screening row of one evaluated patient: options and treatments already under way."""

from __future__ import annotations

from pathlib import Path

from cds.authoring.cases import load_case
from cds.evaluation import Evaluator
from cds.screen.row import COLUMNS, row_from_evaluation

PATIENTS = Path(__file__).resolve().parents[1] / "patients" / "next"


def _row(case: str) -> dict[str, object]:
    c = load_case(PATIENTS / case)
    ev = Evaluator()
    row = row_from_evaluation("p1", ev.evaluate_bytes(c.bundle_bytes(), c.data.now))
    assert list(row) == list(COLUMNS)
    return row


def test_a_treatment_under_way_is_listed_and_is_not_a_top_option() -> None:
    row = _row("esketamine-in-use/in-twice-weekly-sessions.yaml")
    assert row["treatments_in_use"] == ["esketamine"]
    assert "option-esketamine" in row["finding_codes"] and "option-esketamine" not in row["top_options"]
    assert row["top_options"] and len(row["top_options"]) == 3


def test_top_options_are_eligible_options_only() -> None:
    row = _row("esketamine-not-eligible/in-cerebral-aneurysm.yaml")
    assert row["treatments_in_use"] == []
    assert "option-esketamine" in row["finding_codes"]  # the finding that says it is contraindicated
    assert "option-esketamine" not in row["top_options"]


def test_an_offered_treatment_is_not_in_use() -> None:
    row = _row("esketamine-in-use/out-sessions-ended-months-ago.yaml")
    assert row["treatments_in_use"] == []
