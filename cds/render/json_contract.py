"""The `cds evaluate --format json` document. Field names are a published contract
(see docs/architecture.md): add fields, never rename or remove them."""

from __future__ import annotations

from typing import Any

from cds.engine.staging import StagingResult
from cds.evaluation import Evaluation, TrialResult
from cds.fhir.orders import order_template
from cds.findings import Finding
from cds.knowledge import Knowledge, cached_knowledge


def _trial(tr: TrialResult) -> dict[str, Any]:
    t = tr.trial
    o = t.outcome
    return {
        "id": t.id,
        "ingredient": t.ingredient,
        "rxnorm": t.rxnorm,
        "drug_class": t.drug_class,
        "formulation": t.formulation,
        "start": t.start.isoformat() if t.start else None,
        "end": t.end.isoformat() if t.end else None,
        "ongoing": t.ongoing,
        "in_current_episode": t.in_current_episode,
        "max_daily_dose_mg": t.max_daily_dose_mg,
        "min_adequate_dose_mg": t.min_adequate_dose_mg,
        "label_max_dose_mg": t.label_max_dose_mg,
        "weeks_total": t.weeks_total,
        "weeks_at_adequate_dose": t.weeks_at_adequate_dose,
        "weeks_dose_unknown": t.weeks_dose_unknown,
        "adequacy": tr.adequacy,
        "outcome": o.outcome,
        "improvement_pct": o.improvement_pct,
        "outcome_detail": {
            "instrument": o.instrument,
            "baseline_score": o.baseline_score,
            "baseline_date": o.baseline_date.isoformat() if o.baseline_date else None,
            "end_score": o.end_score,
            "end_date": o.end_date.isoformat() if o.end_date else None,
            "response_lost": o.response_lost,
            "basis": o.basis,
        },
        "dose_steps": [
            {"start": s.start.isoformat(), "end": s.end.isoformat(), "daily_dose_mg": s.daily_dose_mg}
            for s in t.dose_steps
        ],
        "dose_records": [
            {
                "resource": d.ref,
                "start": d.start.isoformat() if d.start else None,
                "end": d.end.isoformat() if d.end else None,
                "daily_dose_mg": d.daily_dose_mg,
                "derivation": d.derivation,
            }
            for d in t.dose_records
        ],
        "augmentations": [
            {
                "ingredient": a.ingredient,
                "drug_class": a.drug_class,
                "start": a.start.isoformat() if a.start else None,
                "end": a.end.isoformat() if a.end else None,
                "evidence": list(a.evidence),
            }
            for a in t.augmentations
        ],
        "evidence": list(t.evidence),
    }


def _finding(f: Finding) -> dict[str, Any]:
    return {
        "code": f.code,
        "rule": f.rule,
        "rule_version": f.rule_version,
        "category": f.category,
        "indicator": f.indicator,
        "summary": f.summary,
        "detail": f.detail,
        "evidence": list(f.evidence),
        "source": {"label": f.source.label, "url": f.source.url, "confidence": f.source.confidence},
        "subject": f.subject,
        "needs_clinical_review": f.needs_clinical_review,
        "attributes": f.attributes,
        "proposal": f.proposal,
    }


def _components(r: StagingResult) -> list[dict[str, Any]]:
    return [
        {
            "component": c.component,
            "points": c.points,
            "rule": c.rule,
            "summary": c.summary,
            "evidence": list(c.evidence),
        }
        for c in r.components
    ]


def _staging(ev: Evaluation) -> dict[str, Any]:
    """Contract keys per model (stage / score / level / score+category); each also has `computed`, `reason`
    (why not computed) and its scored `components` with evidence."""
    out: dict[str, Any] = {}
    keys = {
        "thase_rush": ("stage", "label"),
        "mgh": ("score", None),
        "european": ("level", None),
        "maudsley": ("score", "category"),
    }
    for model, (value_key, extra_key) in keys.items():
        r = ev.staging.get(model)
        entry: dict[str, Any] = {value_key: None, "computed": False, "reason": "model not loaded", "components": []}
        if r is not None:
            value: Any = r.value
            if model == "european":
                value = r.label
            elif model == "thase_rush" and r.value is not None:
                value = int(r.value)
            entry = {
                value_key: value if r.computed else None,
                "computed": r.computed,
                "reason": r.reason,
                "components": _components(r),
            }
            if extra_key == "label":
                entry["label"] = r.label
            if extra_key == "category":
                entry["category"] = r.category if r.computed else None
            entry.update(r.details)
        out[model] = entry
    dm = ev.staging.get("dm_trd")
    if dm is not None:
        out["dm_trd"] = {"score": None, "computed": False, "reason": dm.reason, **dm.details}
    return out


def _with_order(doc: dict[str, Any], f: Finding, ev: Evaluation, knowledge: Knowledge | None) -> dict[str, Any]:
    if f.proposal and knowledge is not None:
        doc["order_template"] = order_template(f.proposal, ev.patient, knowledge)
    return doc


def to_contract(ev: Evaluation, knowledge: Knowledge | None = None) -> dict[str, Any]:
    knowledge = knowledge or cached_knowledge()
    return {
        "patient": ev.patient,
        "now": ev.now.isoformat(),
        "knowledge_version": ev.knowledge_version,
        "episode": {
            "start": ev.episode.start.isoformat() if ev.episode.start else None,
            "basis": ev.episode.basis,
            "evidence": list(ev.episode.evidence),
        },
        "trials": [_trial(t) for t in ev.trials],
        "excluded_exposures": [
            {
                "ingredient": e.ingredient,
                "max_daily_dose_mg": e.max_daily_dose_mg,
                "threshold_mg": e.threshold_mg,
                "reason": e.reason,
                "evidence": list(e.evidence),
            }
            for e in ev.excluded
        ],
        "trd": {"status": ev.trd_status, "failed_adequate_trials": ev.failed_adequate_trials},
        "staging": _staging(ev),
        "findings": [_with_order(_finding(f), f, ev, knowledge) for f in ev.findings],
        "data_quality": ev.data_quality,
        "settings_needing_review": [s.model_dump() for s in ev.settings_needing_review],
    }
