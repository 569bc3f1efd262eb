"""Facts for the screen stage (confounders and safety): the patient's TRD status, conditions by value set,
the latest result of every catalogued lab and vital sign (or that there is none), current medications with
their time span, allergies, other questionnaire scores and adherence evidence. Absence is a fact here
(`has_result: false`), so a rule can report missing data instead of passing silently."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from cds.engine.views import Views
from cds.facts.models import FactSet, LabResult, Score
from cds.knowledge import Knowledge
from cds.knowledge.cache import per_knowledge

_DAYS_PER_MONTH = 365.25 / 12


def _ago(now: date, when: date | None) -> int | None:
    return (now - when).days if when else None


def screen_views(facts: FactSet, trd_status: str, failed: int, knowledge: Knowledge, views: Views) -> None:
    now, record, cfg = facts.now, facts.record, knowledge.config
    age = None
    if record.birth_date:
        b = record.birth_date
        age = now.year - b.year - ((now.month, now.day) < (b.month, b.day))
    considered = {e.ingredient for e in record.exposures if e.proposed or e.open_ended}
    views.add(
        {
            "type": "patient",
            "id": "patient",
            "trd_status": trd_status,
            "failed_adequate_trials": failed,
            "trd_workup": trd_status in ("meets", "insufficient_data"),
            "age_years": age,
            # Screening before a treatment applies to candidates (TRD met) and to anyone it is ordered for.
            "esketamine_considered": trd_status == "meets" or "esketamine" in considered,
            "ketamine_considered": trd_status == "meets" or "ketamine" in considered,
        },
        {"trd_status_label": trd_status.replace("_", " ")},
        (),
    )
    remission_refs = {d.ref for d in record.diagnoses if "substance-use-in-remission" in d.categories}
    for i, d in enumerate(record.diagnoses):
        for category in d.categories:
            if category in ("depression-conditions", "substance-use-in-remission"):
                continue
            onset = d.onset or d.recorded
            views.add(
                {
                    "type": "condition",
                    "id": f"condition-{i}-{category}",
                    "category": category,
                    "active": d.active,
                    "in_remission": d.ref in remission_refs,
                    "months_since_onset": round((now - onset).days / _DAYS_PER_MONTH, 1) if onset else None,
                },
                {"text": d.text or category, "onset": onset.isoformat() if onset else "date unknown"},
                (d.ref,),
            )
    latest: dict[str, LabResult] = {}
    for result in record.labs:
        if result.date <= now:
            latest[result.analyte] = result  # labs are in date order: the last one wins
    for analyte, lab_id, name in _lab_names(knowledge):
        lab = latest.get(analyte)
        view: dict[str, Any] = {
            "type": "lab",
            "id": lab_id,
            "analyte": analyte,
            "has_result": lab is not None,
        }
        display: dict[str, Any] = {"name": name}
        if lab is not None:
            high = lab.interpretation == "H" or (lab.high is not None and lab.value > lab.high)
            low = lab.interpretation == "L" or (lab.low is not None and lab.value < lab.low)
            view.update(
                value=lab.value,
                days_ago=_ago(now, lab.date),
                above_range=high,
                below_range=low,
                range_known=lab.low is not None or lab.high is not None or lab.interpretation is not None,
            )
            display.update(date=lab.date.isoformat(), range=_range_text(lab))
        views.add(view, display, (lab.ref,) if lab else ())
    recent = now - timedelta(days=cfg["medication_recent_days"])
    default_washout = cfg["maoi_washout_days"]
    washouts, window_days = _washouts(knowledge)
    # Medications stopped longer ago than `recent` still matter while their washout lasts (MAOI interactions).
    window = now - timedelta(days=window_days)
    for i, e in enumerate(record.exposures):
        if e.start is None:
            continue
        end = e.end or (now if e.open_ended else None)
        current = e.open_ended or (end is not None and end >= recent)
        if not (e.open_ended or (end is not None and end >= window)):
            continue  # screen rules are about what the patient takes now, or stopped within a washout
        views.add(
            {
                "type": "medication",
                "id": f"medication-{i}",
                "ingredient": e.ingredient,
                "drug_class": e.drug_class,
                "role": e.role,
                "current": current,
                "proposed": e.proposed,
                "washout_days": washouts.get(e.ingredient, default_washout),
                "dose_mg": e.daily_dose_mg,
                "min_adequate_dose_mg": _dose_limit(knowledge, e.ingredient, e.formulation, "min"),
                "label_max_dose_mg": _dose_limit(knowledge, e.ingredient, e.formulation, "max"),
                "start_day": e.start.toordinal(),
                "end_day": end.toordinal() if end else None,
            },
            {"text": e.medication_text, "start": e.start.isoformat(), "end": end.isoformat() if end else "unknown"},
            e.evidence,
        )
    for i, r in enumerate(record.reactions):
        views.add(
            {"type": "allergy", "id": f"allergy-{i}", "ingredient": r.ingredient, "category": r.category}, {}, (r.ref,)
        )
    last_scores: dict[str, Score] = {}
    for s in record.scores:
        if s.instrument in knowledge.instruments.others:
            last_scores[s.instrument] = s
    for instrument, s in sorted(last_scores.items()):
        views.add(
            {
                "type": "score",
                "id": f"score-{instrument}",
                "instrument": instrument,
                "value": s.value,
                "days_ago": _ago(now, s.date),
            },
            {"name": knowledge.instruments.others[instrument].name, "date": s.date.isoformat()},
            (s.ref,),
        )
    for i, a in enumerate(record.nonadherence):
        views.add(
            {
                "type": "adherence",
                "id": f"adherence-{i}",
                "ingredient": a.ingredient,
                "kind": "not_taken",
                "days_ago": _ago(now, a.date),
            },
            {"reason": a.reason or "no reason given"},
            (a.ref,),
        )
    for t in facts.trials:
        if t.supply_based and t.in_current_episode and t.weeks_total:
            total = round(t.weeks_total * 7)
            pdc = round(100.0 * (total - t.days_without_supply) / total, 1) if total else None
            views.add(
                {
                    "type": "adherence",
                    "id": f"adherence-{t.id}",
                    "ingredient": t.ingredient,
                    "kind": "dispensing_gaps",
                    "pdc_pct": pdc,
                    "gap_days": t.days_without_supply,
                },
                {"reason": f"{t.days_without_supply} days without supply"},
                t.evidence,
            )


@per_knowledge
def _lab_names(knowledge: Knowledge) -> tuple[tuple[str, str, str], ...]:
    """(analyte, fact id, name) of every catalogued lab and vital sign, and the pregnancy test."""
    analytes = knowledge.observations.analytes
    names = [(a, analytes[a].name) for a in analytes] + [("pregnancy_test", "pregnancy test")]
    return tuple((a, f"lab-{a}", name) for a, name in names)


@per_knowledge
def _washouts(knowledge: Knowledge) -> tuple[dict[str, Any], Any]:
    """Serotonergic washout days by ingredient (where longer than the default), and how far back a stopped
    medication still matters: the longest of the recent-medication window and every washout."""
    cfg = knowledge.config
    washouts = {
        d.ingredient: d.serotonergic_washout_days.value
        for d in knowledge.catalog.drugs.values()
        if d.serotonergic_washout_days is not None
    }
    return washouts, max([cfg["medication_recent_days"], cfg["maoi_washout_days"], *washouts.values()])


def _range_text(lab: LabResult) -> str:
    if lab.low is None and lab.high is None:
        return "no reference range"
    low = f"{lab.low:g}" if lab.low is not None else ""
    high = f"{lab.high:g}" if lab.high is not None else ""
    return f"reference {low}-{high} ({'result' if lab.range_source == 'record' else 'catalog default'})"


def _dose_limit(knowledge: Knowledge, ingredient: str, formulation: str, which: str) -> float | None:
    drug = knowledge.catalog.get(ingredient)
    if drug is None:
        return None
    value = drug.min_dose(formulation) if which == "min" else drug.max_dose(formulation)
    return value.value if value else None
