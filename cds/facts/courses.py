"""Non-drug treatment courses (ECT, psychotherapy), MGH optimisation markers on trials, and the baseline
severity of the current episode: the facts the staging models need beyond trials."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import timedelta

from cds.facts.construct import trusted
from cds.facts.models import (
    BaselineSeverity,
    Episode,
    ProcedureRecord,
    Score,
    TreatmentCourse,
    Trial,
)
from cds.facts.outcome import ScoreIndex, assess_outcome
from cds.knowledge import Knowledge

_baseline, _trial = trusted(BaselineSeverity), trusted(Trial)  # Model(**fields), cheaper (cds.facts.construct)
_KIND = {"ect-procedures": "ect", "psychotherapy-procedures": "psychotherapy"}


def build_courses(
    procedures: Sequence[ProcedureRecord], scores: Sequence[Score], episode: Episode, knowledge: Knowledge
) -> list[TreatmentCourse]:
    cfg = knowledge.config
    gaps = {"ect": cfg["ect_course_gap_days"], "psychotherapy": cfg["psychotherapy_course_gap_days"]}
    index = ScoreIndex(scores)
    courses: list[TreatmentCourse] = []
    for valueset, kind in _KIND.items():
        sessions = sorted((p for p in procedures if valueset in p.categories), key=lambda p: (p.start, p.ref))
        groups: list[list[ProcedureRecord]] = []
        for p in sessions:
            if groups and (p.start - groups[-1][-1].end).days <= gaps[kind]:
                groups[-1].append(p)
            else:
                groups.append([p])
        for group in groups:
            start, end = group[0].start, max(p.end for p in group)
            placements = {p.bilateral for p in group}
            outcome = assess_outcome(
                start=start,
                end=end,
                weeks_at_adequate_dose=0.0,
                stopped_for_adverse_effect=False,
                ongoing=False,
                scores=index,
                knowledge=knowledge,
            )
            courses.append(
                TreatmentCourse(
                    id=f"{kind}-{len([c for c in courses if c.kind == kind]) + 1}",
                    kind=kind,
                    start=start,
                    end=end,
                    sessions=len(group),
                    weeks=round(((end - start).days + 1) / 7.0, 1),
                    bilateral=True if True in placements else (False if placements == {False} else None),
                    in_current_episode=episode.start is None or end >= episode.start,
                    outcome=outcome,
                    evidence=tuple(p.ref for p in group) + outcome.evidence,
                )
            )
    return courses


def mark_optimisations(trials: Sequence[Trial], knowledge: Knowledge) -> list[Trial]:
    """Dose increases within a trial, and other antidepressants added to it (combination, not a switch:
    the added drug stops with or before the trial)."""
    overlap_min = knowledge.config["combination_min_overlap_days"]
    gap = timedelta(days=knowledge.config["trial_gap_days"])
    out: list[Trial] = []
    added: dict[str, str] = {}  # trial id -> the ingredient it was combined with
    # Candidates by start date, so each trial looks only at those starting within its span (linear in history
    # length; the pairwise scan was quadratic). A partner must start after the trial and overlap it by at least
    # overlap_min days, hence start no later than t.end + (1 - overlap_min) days.
    dated = sorted(((o.start, o.end, o) for o in trials if o.start and o.end), key=lambda x: x[0])
    starts = [start for start, _, _ in dated]
    for t in trials:
        increased = _ever_increased([s.daily_dose_mg for s in t.dose_steps if s.daily_dose_mg is not None])
        combined = []
        if t.start and t.end:
            lo = bisect_right(starts, t.start)
            hi = bisect_right(starts, t.end + timedelta(days=1 - overlap_min))
            for other_start, other_end, other in dated[lo:hi]:
                if other.ingredient == t.ingredient:
                    continue
                overlap = (min(t.end, other_end) - max(t.start, other_start)).days + 1
                if overlap >= overlap_min and other_end <= t.end + gap:
                    combined.append(other.ingredient)
                    added.setdefault(other.id, t.ingredient)
        combined_with = tuple(sorted(set(combined)))
        if increased == t.dose_increased and combined_with == t.combined_with:
            out.append(t)  # nothing to mark: the same fact (a copy would be equal)
        else:
            out.append(_trial.replace(t, {"dose_increased": increased, "combined_with": combined_with}))
    # A combination partner is part of the trial it was added to (MGH +0.5, Maudsley augmentation), not a trial
    # of its own: only a switch (the first drug stopped, the second continued alone) makes a new trial (§3.2, §3.6).
    return [_trial.replace(t, {"added_to": added[t.id]}) if t.id in added else t for t in out]


def _ever_increased(doses: Sequence[float]) -> bool:
    """Whether any dose is above the lowest dose before it."""
    lowest: float | None = None
    for dose in doses:
        if lowest is not None and dose > lowest:
            return True
        lowest = dose if lowest is None else min(lowest, dose)
    return False


def baseline_severity(scores: Sequence[Score], episode: Episode, knowledge: Knowledge) -> BaselineSeverity | None:
    """The first score of the current episode (from shortly before its start), on the first instrument
    that has one, with its band and the Maudsley category that band maps to."""
    if episode.start is None:
        return None
    since = episode.start - timedelta(days=knowledge.config["baseline_days_before_start"])
    mapping = knowledge.config.maudsley_severity
    for instrument in knowledge.instruments.instruments:
        first = next(
            (
                s
                for s in sorted(scores, key=lambda s: (s.date, s.ref))
                if s.instrument == instrument and s.date >= since
            ),
            None,
        )
        if first is None:
            continue
        band = knowledge.instruments.severity(instrument, first.value)
        return _baseline(
            {
                "instrument": instrument,
                "score": first.value,
                "date": first.date,
                "band": band,
                "msm_category": mapping.map.get(band) if mapping and band else None,
                "evidence": (first.ref,),
            }
        )
    return None
