"""The screening row of one evaluated patient: options and treatments already under way."""

from __future__ import annotations

from pathlib import Path

from cds.authoring.cases import load_case
from cds.evaluation import Evaluator
from cds.screen.row import COLUMNS, STAGING, row_from_evaluation

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


def test_staging_columns_hold_each_models_result() -> None:
    """Every staging model computed for the patient fills its columns (all of them were null before this test:
    the row read fields that StagingResult does not have)."""
    c = load_case(PATIENTS.parent / "staging" / "trsm" / "stage-5" / "in-failed-bilateral-ect.yaml")
    evaluation = Evaluator().evaluate_bytes(c.bundle_bytes(), c.data.now)
    row = row_from_evaluation("p1", evaluation)
    staging = evaluation.staging
    assert all(staging[m].computed for m in ("thase_rush", "mgh", "european", "maudsley"))
    assert row["staging_thase_rush_stage"] == staging["thase_rush"].label == "V"
    assert row["staging_mgh_score"] == staging["mgh"].value
    assert row["staging_european_level"] == staging["european"].label
    assert row["staging_maudsley_score"] == staging["maudsley"].value
    assert row["staging_maudsley_category"] == staging["maudsley"].category
    assert all(row[c] is not None for c in STAGING)


def test_a_model_that_cannot_be_computed_leaves_its_columns_null() -> None:
    """Unknown is not negative: a model without the data it needs gives null columns, not a score of zero."""
    c = load_case(PATIENTS.parent / "adequacy" / "adequate" / "out-sertraline-100mg-5-weeks.yaml")
    evaluation = Evaluator().evaluate_bytes(c.bundle_bytes(), c.data.now)
    row = row_from_evaluation("p1", evaluation)
    staging = evaluation.staging
    assert staging["thase_rush"].computed and row["staging_thase_rush_stage"] == staging["thase_rush"].label
    assert not any(staging[m].computed for m in ("mgh", "european", "maudsley"))
    unknown = ("staging_mgh_score", "staging_european_level", "staging_maudsley_score", "staging_maudsley_category")
    assert [row[column] for column in unknown] == [None] * 4
