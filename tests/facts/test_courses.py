"""mark_optimisations: dose increases and combination partners, checked against the plain pairwise definition."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from cds.facts.courses import mark_optimisations
from cds.facts.models import DoseStep, Trial, TrialOutcome
from cds.knowledge import Knowledge, cached_knowledge

DAY0 = date(2024, 1, 1)
INGREDIENTS = ("sertraline", "mirtazapine", "bupropion", "venlafaxine")


def _trial(i: int, ingredient: str, start: int | None, length: int, doses: list[float]) -> Trial:
    begin = DAY0 + timedelta(days=start) if start is not None else None
    end = begin + timedelta(days=length) if begin else None
    steps = tuple(
        DoseStep(start=begin or DAY0, end=end or DAY0, daily_dose_mg=d) for d in doses
    )  # only the order of the doses matters here
    return Trial(
        id=f"trial-{i}",
        ingredient=ingredient,
        rxnorm=None,
        drug_class="x",
        formulation="oral",
        start=begin,
        end=end,
        ongoing=False,
        dates_known=begin is not None,
        in_current_episode=True,
        max_daily_dose_mg=None,
        min_adequate_dose_mg=None,
        min_dose_confidence=None,
        label_max_dose_mg=None,
        weeks_total=None,
        weeks_at_adequate_dose=0.0,
        weeks_dose_unknown=0.0,
        stopped_for_adverse_effect=False,
        dose_steps=steps,
        outcome=TrialOutcome(outcome="unknown"),
    )


def _pairwise(trials: list[Trial], knowledge: Knowledge) -> list[tuple[bool, tuple[str, ...], str | None]]:
    """The definition, written as directly as possible (quadratic; fine for a test)."""
    overlap_min = knowledge.config["combination_min_overlap_days"]
    gap = timedelta(days=knowledge.config["trial_gap_days"])
    added: dict[str, str] = {}
    marks = []
    for t in trials:
        known = [s.daily_dose_mg for s in t.dose_steps if s.daily_dose_mg is not None]
        increased = any(later > min(known[:i]) for i, later in enumerate(known) if i > 0)
        combined = set()
        for other in trials:
            if not (t.start and t.end and other.start and other.end):
                continue
            if other.ingredient == t.ingredient or other.start <= t.start:
                continue
            overlap = (min(t.end, other.end) - max(t.start, other.start)).days + 1
            if overlap >= overlap_min and other.end <= t.end + gap:
                combined.add(other.ingredient)
                added.setdefault(other.id, t.ingredient)
        marks.append((increased, tuple(sorted(combined))))
    return [(inc, comb, added.get(t.id)) for t, (inc, comb) in zip(trials, marks, strict=True)]


trial_specs = st.lists(
    st.tuples(
        st.sampled_from(INGREDIENTS),
        st.one_of(st.none(), st.integers(0, 400)),
        st.integers(0, 200),
        st.lists(st.sampled_from([25.0, 50.0, 100.0, 150.0]), max_size=4),
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(trial_specs)
def test_matches_the_pairwise_definition(specs: list[tuple[str, int | None, int, list[float]]]) -> None:
    knowledge = cached_knowledge()
    trials = [_trial(i, ing, start, length, doses) for i, (ing, start, length, doses) in enumerate(specs)]
    marked = mark_optimisations(trials, knowledge)
    assert [(t.dose_increased, t.combined_with, t.added_to) for t in marked] == _pairwise(trials, knowledge)


def test_a_drug_added_during_a_trial_is_its_partner() -> None:
    knowledge = cached_knowledge()
    base = _trial(0, "sertraline", 0, 120, [50.0, 100.0])
    partner = _trial(1, "mirtazapine", 30, 60, [15.0])
    marked = mark_optimisations([base, partner], knowledge)
    assert marked[0].dose_increased and marked[0].combined_with == ("mirtazapine",)
    assert marked[1].added_to == "sertraline"
