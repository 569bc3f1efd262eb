"""Outcome of a trial from scores: improvement from baseline and the instrument's own cut-offs."""

from __future__ import annotations

import pytest

from cds.evaluation import Evaluator
from tests.conftest import NOW
from tests.helpers import bundle, mdd, phq9, statement

SERTRALINE = "36437"


def outcome(ev: Evaluator, base: int, end: int, *extra: dict[str, object]) -> tuple[str, float | None, bool]:
    f = ev.facts(
        bundle(
            mdd(),
            statement("s", SERTRALINE, "2025-01-01", "2025-03-31", mg=100),
            phq9("b", "2024-12-20", base),
            phq9("e", "2025-03-30", end),
            *extra,
        ),
        NOW,
    )
    o = f.trials[0].outcome
    return o.outcome, o.improvement_pct, o.response_lost


@pytest.mark.parametrize(
    ("base", "end", "expected", "pct"),
    [
        (20, 4, "remission", 80.0),  # PHQ-9 <= 4
        (20, 10, "response", 50.0),  # exactly 50 %: response
        (20, 11, "partial_response", 45.0),
        (20, 15, "partial_response", 25.0),  # exactly 25 %: partial
        (20, 16, "nonresponse", 20.0),
        (20, 22, "nonresponse", -10.0),  # worse
    ],
)
def test_classification(reference: Evaluator, base: int, end: int, expected: str, pct: float) -> None:
    assert outcome(reference, base, end)[:2] == (expected, pct)


def test_response_then_loss_is_a_response(reference: Evaluator) -> None:
    assert outcome(reference, 20, 18, phq9("m", "2025-02-15", 6)) == ("response", 10.0, True)


def test_no_baseline_is_unknown(reference: Evaluator) -> None:
    f = reference.facts(
        bundle(mdd(), statement("s", SERTRALINE, "2025-01-01", "2025-03-31", mg=100), phq9("e", "2025-03-30", 18)), NOW
    )
    assert f.trials[0].outcome.outcome == "unknown"
    assert f.trials[0].outcome.basis == "no baseline score"


def test_baseline_already_in_remission_is_unknown(reference: Evaluator) -> None:
    assert outcome(reference, 3, 2)[0] == "unknown"


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("nausea and agitation (side effects)", "intolerance"),
        ("patient preference; no side effects reported", "unknown"),  # negated wording is not intolerance
    ],
)
def test_stopped_early_with_reason(reference: Evaluator, reason: str, expected: str) -> None:
    stopped = statement(
        "s", SERTRALINE, "2025-01-01", "2025-01-14", mg=50, status="stopped", statusReason=[{"text": reason}]
    )
    f = reference.facts(bundle(mdd(), stopped), NOW)
    assert f.trials[0].outcome.outcome == expected


def test_score_values_in_string_and_quantity_form(reference: Evaluator) -> None:
    f = reference.facts(
        bundle(
            mdd(),
            statement("s", SERTRALINE, "2025-01-01", "2025-03-31", mg=100),
            phq9("b", "2024-12-20", "20", key="valueString"),
            phq9("e", "2025-03-30", {"value": 16}, key="valueQuantity"),
        ),
        NOW,
    )
    assert (f.trials[0].outcome.baseline_score, f.trials[0].outcome.end_score) == (20, 16)
