"""Typed facts -> the flat fact views the rules match on (scalars only, no None: a missing field is absent).

Each view has `type` and a unique `id`. Display-only values (dates, labels, explanations) are kept apart in
`display`, keyed by fact id, so the engine never sees them but finding templates can."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cds.engine.base import FactView, StageResult
from cds.facts.models import FactSet, Trial

_OUTCOME_LABEL = {
    "remission": "remission",
    "response": "response",
    "partial_response": "partial response",
    "nonresponse": "no response",
    "intolerance": "not tolerated",
    "unknown": "outcome unknown",
}


@dataclass
class Views:
    facts: list[FactView] = field(default_factory=list)
    display: dict[str, dict[str, Any]] = field(default_factory=dict)
    evidence: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def add(self, view: dict[str, Any], display: dict[str, Any], evidence: Iterable[str]) -> None:
        clean: FactView = {k: v for k, v in view.items() if v is not None}
        self.facts.append(clean)
        self.display[str(clean["id"])] = display
        self.evidence[str(clean["id"])] = tuple(evidence)


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


def trd_summary(facts: FactSet, result: StageResult) -> Views:
    """Counts for the conclude stage. Aggregation is arithmetic, so it is done here, not in the engine."""
    adequacy = adequacy_by_trial(result)
    failed = failed_trials(result)
    in_episode = [t for t in facts.trials if t.in_current_episode]
    failed_trials_ = [t for t in in_episode if t.id in failed]
    possible = [
        t
        for t in in_episode
        if t.id not in failed
        and (
            (
                adequacy.get(t.id, "unknown") == "unknown"
                and t.outcome.outcome in ("unknown", "nonresponse", "partial_response")
            )
            or (adequacy.get(t.id) == "adequate" and t.outcome.outcome == "unknown")
        )
    ]
    views = Views()
    views.add(
        {
            "type": "trd_summary",
            "id": "trd-summary",
            "failed_adequate_trials": len(failed_trials_),
            "possibly_failed_trials": len(possible),
            "failed_or_possibly_failed": len(failed_trials_) + len(possible),
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
    return views


def _trial_label(t: Trial) -> str:
    dose = f" {t.max_daily_dose_mg:g} mg/day" if t.max_daily_dose_mg is not None else ""
    when = f" from {t.start.isoformat()}" if t.start else ""
    return f"{t.ingredient}{dose}{when}"
