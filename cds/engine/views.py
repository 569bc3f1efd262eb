"""Typed facts -> the flat fact views the rules match on (scalars only, no None: a missing field is absent).

Each view has `type` and a unique `id`. Display-only values (dates, labels, explanations) are kept apart in
`display`, keyed by fact id, so the engine never sees them but finding templates can."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from cds.engine.base import FactView, StageResult
from cds.errors import EngineError
from cds.facts.models import FactSet, IssueKind, Outcome, Trial

_OUTCOME_LABEL = {
    "remission": "remission",
    "response": "response",
    "partial_response": "partial response",
    "nonresponse": "no response",
    "intolerance": "not tolerated",
    "unknown": "outcome unknown",
}


# ---------------------------------------------------------------------------- fact schema
# The one declaration of every base fact type the rules can match: its stage, its fields, their kinds and, for
# closed vocabularies, their values. View builders are checked against it (Views.add); `cds rules lint` reads it.
# A new base fact type or field is declared here, next to the builder that produces it.

FieldKind = Literal["str", "number", "bool"]


@dataclass(frozen=True)
class FactField:
    kind: FieldKind
    values: tuple[str, ...] = ()  # the closed value set of a str field; empty = open


@dataclass(frozen=True)
class FactType:
    stage: str
    fields: dict[str, FactField]


STR, NUM, BOOL = FactField("str"), FactField("number"), FactField("bool")
FACT_SCHEMA: dict[str, FactType] = {
    "trial": FactType(
        "classify",
        {
            "id": STR,
            "ingredient": STR,
            "drug_class": STR,
            "dates_known": BOOL,
            "ongoing": BOOL,
            "in_current_episode": BOOL,
            "max_daily_dose_mg": NUM,
            "min_adequate_dose_mg": NUM,
            "label_max_dose_mg": NUM,
            "weeks_total": NUM,
            "weeks_at_adequate_dose": NUM,
            "weeks_dose_unknown": NUM,
            "weeks_possibly_adequate": NUM,
            "outcome": FactField("str", get_args(Outcome)),
            "improvement_pct": NUM,
            "response_lost": BOOL,
            "stopped_for_adverse_effect": BOOL,
            "augmentation_count": NUM,
            "added_to": STR,
        },
    ),
    "excluded_exposure": FactType(
        "classify",
        {"id": STR, "ingredient": STR, "max_daily_dose_mg": NUM, "threshold_mg": NUM, "reason": STR},
    ),
    "data_issue": FactType(
        "classify", {"id": STR, "kind": FactField("str", get_args(IssueKind)), "ref": STR, "message": STR}
    ),
    "staging_summary": FactType(
        "conclude",
        {
            "id": STR,
            "failed_trials": NUM,
            "failed_classes": NUM,
            "esm_failed_classes": NUM,
            "has_failed_tca": BOOL,
            "has_failed_maoi": BOOL,
            "trsm_classes_for_tca": NUM,
            "trsm_classes_for_maoi": NUM,
            "failed_ingredients": NUM,
            "ect_courses": NUM,
            "failed_ect_courses": NUM,
            "failed_bilateral_ect": NUM,
            "episode_months": NUM,
            "baseline_severity": FactField("str", ("subsyndromal", "mild", "moderate", "severe")),
            "psychotic_features": BOOL,
            "augmentation_used": BOOL,
            "cumulative_adequate_weeks": NUM,
            "resistance_months": NUM,
            "response_since_first_failure": BOOL,
        },
    ),
    "staged_trial": FactType(
        "conclude",
        {
            "id": STR,
            "ingredient": STR,
            "drug_class": STR,
            "dose_increased": BOOL,
            "augmentation_count": NUM,
            "combination_count": NUM,
        },
    ),
    "patient": FactType(
        "screen",
        {
            "id": STR,
            "trd_status": FactField("str", ("meets", "does_not_meet", "insufficient_data")),
            "failed_adequate_trials": NUM,
            "trd_workup": BOOL,
            "age_years": NUM,
            "esketamine_considered": BOOL,
            "ketamine_considered": BOOL,
        },
    ),
    "condition": FactType(
        "screen",
        {"id": STR, "category": STR, "active": BOOL, "in_remission": BOOL, "months_since_onset": NUM},
    ),
    "lab": FactType(
        "screen",
        {
            "id": STR,
            "analyte": STR,
            "has_result": BOOL,
            "value": NUM,
            "days_ago": NUM,
            "above_range": BOOL,
            "below_range": BOOL,
            "range_known": BOOL,
        },
    ),
    "medication": FactType(
        "screen",
        {
            "id": STR,
            "ingredient": STR,
            "drug_class": STR,
            "role": STR,
            "current": BOOL,
            "proposed": BOOL,
            "washout_days": NUM,
            "dose_mg": NUM,
            "min_adequate_dose_mg": NUM,
            "label_max_dose_mg": NUM,
            "start_day": NUM,
            "end_day": NUM,
        },
    ),
    "allergy": FactType("screen", {"id": STR, "ingredient": STR, "category": STR}),
    "score": FactType("screen", {"id": STR, "instrument": STR, "value": NUM, "days_ago": NUM}),
    "adherence": FactType(
        "screen",
        {
            "id": STR,
            "ingredient": STR,
            "kind": FactField("str", ("not_taken", "dispensing_gaps")),
            "days_ago": NUM,
            "pdc_pct": NUM,
            "gap_days": NUM,
        },
    ),
    "care": FactType(
        "recommend",
        {
            "id": STR,
            "trd_status": FactField("str", ("meets", "does_not_meet", "insufficient_data")),
            "failed_adequate_trials": NUM,
            "failed_classes": NUM,
            "age_years": NUM,
            "adult_or_unknown": BOOL,
            "bipolar": BOOL,
            "psychotic": BOOL,
            "suicide_risk": BOOL,
            "severe": BOOL,
            "recurrent": BOOL,
            "chronic": BOOL,
            "adequate_psychotherapy": BOOL,
            "last_outcome": FactField("str", get_args(Outcome)),
            "last_failed": BOOL,
            "last_intolerant": BOOL,
            "ect_failed": BOOL,
        },
    ),
    "current_trial": FactType(
        "recommend",
        {
            "id": STR,
            "ingredient": STR,
            "drug_class": STR,
            "ongoing": BOOL,
            "tolerated": BOOL,
            "dose_mg": NUM,
            "label_max_dose_mg": NUM,
            "below_label_max": BOOL,
            "at_adequate_dose": BOOL,
            "weeks_at_adequate_dose": NUM,
            "outcome": FactField("str", get_args(Outcome)),
            "improvement_pct": NUM,
        },
    ),
    "agent": FactType("recommend", {"id": STR, "ingredient": STR, "drug_class": STR, "excluded": BOOL}),
    "treatment": FactType(
        "recommend",
        {
            "id": STR,
            "treatment": FactField("str", ("esketamine", "ketamine", "ect", "rtms")),
            "contraindicated": BOOL,
            "cautions": NUM,
            # Esketamine, ketamine: a record of it open-ended or ended at most medication_recent_days ago. ECT: a
            # course whose last session is at most ect_course_gap_days old. Absent for rTMS: no rTMS procedure
            # value set, so the record does not show its use.
            "in_use": BOOL,
        },
    ),
    "trd_summary": FactType(
        "conclude",
        {
            "id": STR,
            "failed_adequate_trials": NUM,
            "possibly_failed_trials": NUM,
            "failed_or_possibly_failed": NUM,
            "unidentified_medications": NUM,  # distinct drugs in medication records that name none
            "failed_possible_or_unidentified": NUM,
            "trials_in_episode": NUM,
        },
    ),
    # Present when some medication records of the episode name no drug; its evidence is those records.
    "unidentified_medications": FactType("conclude", {"id": STR, "drugs": NUM, "records": NUM}),
}


_ALLOWED = {name: frozenset(t.fields) | {"type"} for name, t in FACT_SCHEMA.items()}


def _check_schema(view: dict[str, Any]) -> None:
    allowed = _ALLOWED.get(str(view.get("type")))
    if allowed is None or allowed.issuperset(view):
        return
    undeclared = sorted(set(view) - allowed)
    if undeclared:
        raise EngineError(f"fact type {view['type']!r}: fields {undeclared} are not declared in FACT_SCHEMA")


@dataclass
class Views:
    facts: list[FactView] = field(default_factory=list)
    display: dict[str, dict[str, Any]] = field(default_factory=dict)
    evidence: dict[str, tuple[str, ...]] = field(default_factory=dict)
    by_id: dict[str, FactView] = field(default_factory=dict)  # the facts by id (a later one wins)

    def add(self, view: dict[str, Any], display: dict[str, Any], evidence: Iterable[str]) -> None:
        allowed = _ALLOWED.get(str(view.get("type")))
        if allowed is not None and not allowed.issuperset(view):
            _check_schema(view)  # raises
        clean: FactView = {k: v for k, v in view.items() if v is not None}
        self.facts.append(clean)
        fid = str(clean["id"])
        self.by_id[fid] = clean
        self.display[fid] = display
        self.evidence[fid] = tuple(evidence)


def trial_view(t: Trial) -> dict[str, Any]:
    return {
        "type": "trial",
        "id": t.id,
        "ingredient": t.ingredient,
        "drug_class": t.drug_class,
        "dates_known": t.dates_known,
        "ongoing": t.ongoing,
        "in_current_episode": t.in_current_episode,
        "max_daily_dose_mg": t.max_daily_dose_mg,
        "min_adequate_dose_mg": t.min_adequate_dose_mg,
        "label_max_dose_mg": t.label_max_dose_mg,
        "weeks_total": t.weeks_total,
        "weeks_at_adequate_dose": t.weeks_at_adequate_dose,
        "weeks_dose_unknown": t.weeks_dose_unknown,
        "weeks_possibly_adequate": round(t.weeks_at_adequate_dose + t.weeks_dose_unknown, 1),
        "outcome": t.outcome.outcome,
        "improvement_pct": t.outcome.improvement_pct,
        "response_lost": t.outcome.response_lost,
        "stopped_for_adverse_effect": t.stopped_for_adverse_effect,
        "augmentation_count": len(t.augmentations),
        "added_to": t.added_to,
    }


def trial_display(t: Trial) -> dict[str, Any]:
    return {
        "start": t.start.isoformat() if t.start else None,
        "end": t.end.isoformat() if t.end else None,
        "min_dose_confidence": t.min_dose_confidence,
        "outcome_label": _OUTCOME_LABEL[t.outcome.outcome],
        "outcome_basis": t.outcome.basis,
        "ongoing_note": " so far (ongoing)" if t.ongoing else "",
    }


def stage_one(facts: FactSet) -> Views:
    views = Views()
    for t in facts.trials:
        views.add(trial_view(t), trial_display(t), t.evidence)
    for ex in facts.excluded:
        views.add(
            {
                "type": "excluded_exposure",
                "id": ex.id,
                "ingredient": ex.ingredient,
                "max_daily_dose_mg": ex.max_daily_dose_mg,
                "threshold_mg": ex.threshold_mg,
                "reason": ex.reason,
            },
            {},
            ex.evidence,
        )
    for i, issue in enumerate(facts.issues, start=1):
        evidence = (issue.ref,) if "/" in issue.ref else ()
        views.add(
            {
                "type": "data_issue",
                "id": f"issue-{i}",
                "kind": issue.kind,
                "ref": issue.ref,
                "message": issue.message,
            },
            {},
            evidence,
        )
    return views


def adequacy_by_trial(result: StageResult) -> dict[str, str]:
    return {str(f["trial"]): str(f["adequacy"]) for f in result.derived if f.get("type") == "trial_adequacy"}


def failed_trials(result: StageResult) -> set[str]:
    return {str(f["trial"]) for f in result.derived if f.get("type") == "failed_trial"}


def per_ingredient(trials: list[Trial]) -> list[Trial]:
    """A re-challenge of the same drug in the same episode is not a new trial (staging reference §3.6, default
    policy): keep the best exposure per ingredient (most weeks at an adequate dose, then the earliest)."""
    best: dict[str, Trial] = {}
    for t in trials:
        kept = best.get(t.ingredient)
        if kept is None or t.weeks_at_adequate_dose > kept.weeks_at_adequate_dose:
            best[t.ingredient] = t
    return sorted(best.values(), key=lambda t: (t.start is None, t.start, t.id))


def trd_summary(facts: FactSet, result: StageResult) -> Views:
    """Counts for the conclude stage. Aggregation is arithmetic, so it is done here, not in the engine."""
    adequacy = adequacy_by_trial(result)
    failed = failed_trials(result)
    in_episode = [t for t in facts.trials if t.in_current_episode]
    failed_trials_ = per_ingredient([t for t in in_episode if t.id in failed])
    failed_ingredients = {t.ingredient for t in failed_trials_}
    possible = [
        t
        for t in per_ingredient(
            [t for t in in_episode if t.ingredient not in failed_ingredients and t.added_to is None]
        )
        if (
            (
                adequacy.get(t.id, "unknown") == "unknown"
                and t.outcome.outcome in ("unknown", "nonresponse", "partial_response")
            )
            or (adequacy.get(t.id) == "adequate" and t.outcome.outcome == "unknown")
        )
    ]
    # Records naming no drug could each be an antidepressant trial; records of one unknown drug count once.
    unknown: dict[str, list[str]] = {}
    for u in facts.unidentified_medications:
        unknown.setdefault(u.key, []).append(u.ref)
    views = Views()
    views.add(
        {
            "type": "trd_summary",
            "id": "trd-summary",
            "failed_adequate_trials": len(failed_trials_),
            "possibly_failed_trials": len(possible),
            "failed_or_possibly_failed": len(failed_trials_) + len(possible),
            "unidentified_medications": len(unknown),
            "failed_possible_or_unidentified": len(failed_trials_) + len(possible) + len(unknown),
            "trials_in_episode": len(in_episode),
        },
        {
            "failed_list": ", ".join(_trial_label(t) for t in failed_trials_) or "none",
            "possible_list": ", ".join(_trial_label(t) for t in possible) or "none",
            "episode_basis": facts.episode.basis
            + (f", from {facts.episode.start.isoformat()}" if facts.episode.start else ""),
        },
        tuple(dict.fromkeys(r for t in failed_trials_ + possible for r in t.evidence)),
    )
    if unknown:
        records = [u.ref for u in facts.unidentified_medications]
        views.add(
            {
                "type": "unidentified_medications",
                "id": "unidentified-medications",
                "drugs": len(unknown),
                "records": len(records),
            },
            {"list": "; ".join(_unknown_label(key, refs) for key, refs in unknown.items())},
            records,
        )
    return views


def _unknown_label(key: str, refs: list[str]) -> str:
    return ", ".join(refs) if [key] == refs else f"{key} ({', '.join(refs)})"


def _trial_label(t: Trial) -> str:
    dose = f" {t.max_daily_dose_mg:g} mg/day" if t.max_daily_dose_mg is not None else ""
    when = f" from {t.start.isoformat()}" if t.start else ""
    return f"{t.ingredient}{dose}{when}"
