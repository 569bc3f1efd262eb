"""Facts for the staging models (conclude stage): one staging summary with the counts the models need, and
one `staged_trial` per failed adequate trial for the per-trial MGH points. Counting is arithmetic, so it is
done here; which counts earn which points is decided by the rules in rules/staging/."""

from __future__ import annotations

from typing import Any

from cds.engine.views import Views, per_ingredient
from cds.facts.models import FactSet, Trial
from cds.knowledge import Knowledge

_DAYS_PER_MONTH = 365.25 / 12
_FAILED = ("nonresponse", "partial_response")
_RESPONDED = ("remission", "response")


def _months(days: int) -> float:
    return round(days / _DAYS_PER_MONTH, 1)


def staging_views(facts: FactSet, failed_ids: set[str], knowledge: Knowledge, views: Views) -> None:
    failed = per_ingredient([t for t in facts.trials if t.id in failed_ids and t.in_current_episode])
    in_episode = [t for t in facts.trials if t.in_current_episode]
    ect = [c for c in facts.courses if c.kind == "ect" and c.in_current_episode]
    failed_ect = [c for c in ect if c.outcome.outcome in _FAILED]
    classes = sorted({t.drug_class for t in failed})
    double_count = knowledge.config["trsm_tca_double_count"] >= 1
    ingredients = sorted({t.ingredient for t in failed})
    augmented = [t for t in in_episode if t.augmentations or t.combined_with]
    first = min((t.start for t in failed if t.start), default=None)
    last = max((t.end for t in failed if t.end), default=None)
    outcomes = [(t.start, t.outcome) for t in in_episode] + [(c.start, c.outcome) for c in ect]
    responded = [
        o
        for start, o in outcomes
        if first and start and start > first and o.outcome in _RESPONDED and not o.response_lost
    ]
    esm_classes = classes + (["ECT"] if failed_ect else [])
    severity = facts.baseline_severity
    view: dict[str, Any] = {
        "type": "staging_summary",
        "id": "staging-summary",
        "failed_trials": len(failed),
        "failed_classes": len(classes),
        "esm_failed_classes": len(esm_classes),
        "has_failed_tca": "TCA" in classes,
        "has_failed_maoi": "MAOI" in classes,
        "trsm_classes_for_tca": len(classes) if double_count else len([c for c in classes if c != "TCA"]),
        "trsm_classes_for_maoi": len(classes)
        if double_count
        else len([c for c in classes if c not in ("TCA", "MAOI")]),
        "failed_ingredients": len(ingredients),
        "ect_courses": len(ect),
        "failed_ect_courses": len(failed_ect),
        "failed_bilateral_ect": len([c for c in failed_ect if c.bilateral]),
        "episode_months": _months((facts.now - facts.episode.start).days) if facts.episode.start else None,
        "baseline_severity": severity.msm_category if severity else None,
        "psychotic_features": bool(facts.psychotic_features),
        "augmentation_used": bool(augmented),
        "cumulative_adequate_weeks": round(sum((t.weeks_at_adequate_dose for t in failed), 0.0), 1),
        "resistance_months": _months((last - first).days) if first and last else None,
        "response_since_first_failure": bool(responded),
    }
    display = {
        "failed_classes_list": ", ".join(classes) or "none",
        "esm_classes_list": ", ".join(esm_classes) or "none",
        "failed_ingredients_list": ", ".join(ingredients) or "none",
        "augmentation_list": "; ".join(_augmentation_label(t) for t in augmented) or "none",
        "baseline_description": (
            f"{knowledge.instruments.instruments[severity.instrument].name} {severity.score:g} on "
            f"{severity.date.isoformat()}, {severity.band or 'no band'}"
            if severity
            else "no baseline score"
        ),
    }
    evidence = [r for t in failed for r in t.evidence] + [r for c in ect for r in c.evidence]
    evidence += list(facts.psychotic_features) + list(facts.episode.evidence)
    if severity:
        evidence += list(severity.evidence)
    views.add(view, display, tuple(dict.fromkeys(evidence)))
    for t in failed:
        views.add(
            {
                "type": "staged_trial",
                "id": f"staged-{t.id}",
                "ingredient": t.ingredient,
                "drug_class": t.drug_class,
                "dose_increased": t.dose_increased,
                "augmentation_count": len(t.augmentations),
                "combination_count": len(t.combined_with),
            },
            {
                "augmentation_list": ", ".join(a.ingredient for a in t.augmentations) or "none",
                "combination_list": ", ".join(t.combined_with) or "none",
            },
            t.evidence + tuple(r for a in t.augmentations for r in a.evidence),
        )


def _augmentation_label(t: Trial) -> str:
    added = [a.ingredient for a in t.augmentations] + list(t.combined_with)
    return f"{t.ingredient} + {', '.join(added)}"
