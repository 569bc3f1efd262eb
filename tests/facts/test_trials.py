"""Trial building: grouping per ingredient, gaps, dose over time, weeks at adequate dose, exclusions."""

from __future__ import annotations

from typing import Any

from cds.evaluation import Evaluator
from cds.facts.models import FactSet
from tests.conftest import NOW
from tests.helpers import bundle, mdd, phq9, statement

SERTRALINE, TRAZODONE, ARIPIPRAZOLE = "36437", "10737", "89013"


def facts(ev: Evaluator, *resources: dict[str, Any]) -> FactSet:
    return ev.facts(bundle(mdd(), *resources), NOW)


def test_gap_within_limit_is_one_trial(reference: Evaluator) -> None:
    f = facts(
        reference,
        statement("a", SERTRALINE, "2025-01-01", "2025-02-01", mg=100),
        statement("b", SERTRALINE, "2025-02-10", "2025-03-31", mg=100),
    )
    assert len(f.trials) == 1
    t = f.trials[0]
    assert (t.start.isoformat(), t.end.isoformat()) == ("2025-01-01", "2025-03-31")  # type: ignore[union-attr]
    assert t.weeks_at_adequate_dose == round(90 / 7, 1)  # the 8-day gap is bridged
    assert t.evidence[:2] == ("MedicationStatement/a", "MedicationStatement/b")


def test_gap_beyond_limit_makes_two_trials(reference: Evaluator) -> None:
    f = facts(
        reference,
        statement("a", SERTRALINE, "2025-01-01", "2025-02-01", mg=100),
        statement("b", SERTRALINE, "2025-04-01", "2025-06-30", mg=100),
    )
    assert [t.start.isoformat() for t in f.trials if t.start] == ["2025-01-01", "2025-04-01"]


def test_dose_escalation_counts_only_weeks_at_adequate_dose(reference: Evaluator) -> None:
    f = facts(
        reference,
        statement("a", SERTRALINE, "2025-01-01", "2025-01-28", mg=25),
        statement("b", SERTRALINE, "2025-01-29", "2025-03-11", mg=50),
    )
    t = f.trials[0]
    assert t.max_daily_dose_mg == 50
    assert t.weeks_at_adequate_dose == 6.0
    assert [s.daily_dose_mg for s in t.dose_steps] == [25, 50]


def test_missing_dose_is_unknown_not_zero(reference: Evaluator) -> None:
    f = facts(reference, statement("a", SERTRALINE, "2025-01-01", "2025-03-31"))
    t = f.trials[0]
    assert t.max_daily_dose_mg is None
    assert t.weeks_at_adequate_dose == 0 and t.weeks_dose_unknown == round(90 / 7, 1)
    ev = reference.evaluate_facts(f)
    assert ev.trials[0].adequacy == "unknown"
    assert any(x.code == "trial-data-incomplete" for x in ev.findings)


def test_missing_end_date_is_unknown(reference: Evaluator) -> None:
    f = facts(reference, statement("a", SERTRALINE, "2025-01-01", None, mg=100))
    ev = reference.evaluate_facts(f)
    assert f.trials[0].dates_known is False
    assert ev.trials[0].adequacy == "unknown"


def test_low_dose_trazodone_is_not_a_trial(reference: Evaluator) -> None:
    f = facts(reference, statement("t", TRAZODONE, "2025-01-01", "2025-06-01", mg=50))
    assert f.trials == () and [e.ingredient for e in f.excluded] == ["trazodone"]
    ev = reference.evaluate_facts(f)
    assert [x.code for x in ev.findings if x.category == "adequacy"] == ["exposure-not-antidepressant-trial"]


def test_antidepressant_dose_trazodone_is_a_trial(reference: Evaluator) -> None:
    f = facts(reference, statement("t", TRAZODONE, "2025-01-01", "2025-06-01", mg=300))
    assert [t.ingredient for t in f.trials] == ["trazodone"]


def test_augmenting_agent_is_recorded_on_the_overlapping_trial(reference: Evaluator) -> None:
    f = facts(
        reference,
        statement("s", SERTRALINE, "2025-01-01", "2025-06-01", mg=150),
        statement("a", ARIPIPRAZOLE, "2025-03-01", "2025-05-01", mg=5),
    )
    assert [t.ingredient for t in f.trials] == ["sertraline"]
    assert [a.ingredient for a in f.trials[0].augmentations] == ["aripiprazole"]


def test_trial_before_episode_start_does_not_count(reference: Evaluator) -> None:
    f = facts(
        reference,
        statement("old", SERTRALINE, "2022-01-01", "2022-06-01", mg=100),
        phq9("o1", "2021-12-20", 20),
        phq9("o2", "2022-06-01", 19),
    )
    assert f.trials[0].in_current_episode is False  # episode starts 2024-01-01 (Condition onset)
    assert reference.evaluate_facts(f).failed_adequate_trials == 0


def test_open_active_statement_runs_to_now_and_is_ongoing(reference: Evaluator) -> None:
    f = facts(reference, statement("s", SERTRALINE, "2025-12-20", None, mg=100, status="active"))
    t = f.trials[0]
    assert t.ongoing and t.end == NOW
    ev = reference.evaluate_facts(f)
    assert ev.trials[0].adequacy == "inadequate_duration"
    assert "ongoing" in next(x.summary for x in ev.findings if x.code == "trial-duration-too-short")
