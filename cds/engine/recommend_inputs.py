"""Facts for the recommend stage (next-step options): the clinical picture in one `care` fact, the current
trial, one `agent` fact per augmenting or combining agent with why it may be excluded (tried adequately, not
tolerated, allergy), and one `treatment` fact per neuromodulation or rapid-acting treatment saying whether the
screen stage found a hard stop and, for esketamine, ketamine and ECT, whether it is already under way. Options are
decided by rules/next_steps.yaml; the counts are made here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from cds.engine.base import StageRules
from cds.engine.views import Views
from cds.facts.models import Augmentation, FactSet, MedicationExposure, Trial
from cds.findings import Finding
from cds.knowledge import Knowledge
from cds.knowledge.cache import per_knowledge
from cds.knowledge.models import Drug

# Treatments the screen stage can contraindicate, by the finding codes that say so.
_HARD_STOPS = {"esketamine": "contraindication-esketamine", "ketamine": "contraindication-ketamine"}
_CAUTIONS = {"esketamine": "caution-esketamine", "ect": "caution-ect", "rtms": "caution-rtms"}
_FAILED = ("nonresponse", "partial_response")
_DRUG_TREATMENTS = ("esketamine", "ketamine")  # treatments whose use the medication records show


def _current_trial(facts: FactSet, knowledge: Knowledge) -> Trial | None:
    recent = facts.now - timedelta(days=knowledge.config["medication_recent_days"])
    candidates = [t for t in facts.trials if t.in_current_episode and t.end and (t.ongoing or t.end >= recent)]
    return max(candidates, key=lambda t: (t.ongoing, t.end, t.id)) if candidates else None


def recommend_views(
    facts: FactSet,
    trd_status: str,
    failed_ids: set[str],
    screened: Sequence[Finding],
    knowledge: Knowledge,
    views: Views,
    agents: frozenset[str] | None = None,
) -> None:
    """The recommend stage's facts. `agents`: the ingredients that get an `agent` fact, the ones the stage's rules
    name (`agent_scope`); None gives every catalogued drug one."""
    cfg, now, record = knowledge.config, facts.now, facts.record
    in_episode = [t for t in facts.trials if t.in_current_episode]
    failed = [t for t in in_episode if t.id in failed_ids]
    last = max((t for t in in_episode if t.end), key=lambda t: (t.end, t.id), default=None)
    active_categories = {c for d in record.diagnoses if d.active for c in d.categories}
    any_categories = {c for d in record.diagnoses for c in d.categories}
    psychotherapy = [c for c in facts.courses if c.kind == "psychotherapy"]
    adequate_psychotherapy = [
        c
        for c in psychotherapy
        if c.sessions >= cfg["psychotherapy_adequate_sessions"] or c.weeks >= cfg["psychotherapy_adequate_weeks"]
    ]
    recent = now - timedelta(days=cfg["suicide_item_days"])
    item9 = [s for s in record.scores if s.instrument == "phq9_item9" and s.date >= recent]
    depression_scores = [s for s in record.scores if s.instrument in knowledge.instruments.instruments]
    latest = depression_scores[-1] if depression_scores else None
    latest_band = knowledge.instruments.severity(latest.instrument, latest.value) if latest else None
    age = None
    if record.birth_date:
        b = record.birth_date
        age = now.year - b.year - ((now.month, now.day) < (b.month, b.day))
    episode_months = round((now - facts.episode.start).days / (365.25 / 12), 1) if facts.episode.start else None
    views.add(
        {
            "type": "care",
            "id": "care",
            "trd_status": trd_status,
            "failed_adequate_trials": len({t.ingredient for t in failed}),
            "failed_classes": len({t.drug_class for t in failed}),
            "age_years": age,
            "adult_or_unknown": age is None or age >= cfg["adult_age_years"],
            "bipolar": "bipolar-disorders" in any_categories,
            "psychotic": bool({"psychotic-features", "psychotic-disorders"} & active_categories),
            "suicide_risk": "suicidal-ideation" in active_categories
            or any(s.value >= cfg["suicide_item_min"] for s in item9),
            "severe": latest_band == "severe",
            "recurrent": "recurrent-depression" in any_categories,
            "chronic": episode_months is not None and episode_months >= cfg["chronic_episode_months"],
            "adequate_psychotherapy": bool(adequate_psychotherapy),
            "last_outcome": last.outcome.outcome if last else None,
            "last_failed": bool(last and last.id in failed_ids),
            # Stopped for an adverse effect counts as intolerance here even after an adequate trial: it is what
            # makes a switch preferable to an augmentation (CANMAT 2023 Figure 7.1).
            "last_intolerant": bool(
                last and (last.outcome.outcome == "intolerance" or last.stopped_for_adverse_effect)
            ),
            "ect_failed": any(c.kind == "ect" and c.outcome.outcome in _FAILED for c in facts.courses),
        },
        {
            "failed_list": ", ".join(f"{t.ingredient} ({t.drug_class})" for t in failed) or "none",
            "age_note": "" if age is not None else "; confirm the patient is an adult (no birth date on record)",
            "failed_class_list": ", ".join(sorted({t.drug_class for t in failed})) or "none",
            "last_label": _trial_label(last) if last else "no trial on record",
            "psychotherapy_label": (
                f"{len(psychotherapy)} course(s), the longest {max(c.sessions for c in psychotherapy)} sessions"
                if psychotherapy
                else "no psychotherapy on record"
            ),
            "severity_label": (
                f"{knowledge.instruments.instruments[latest.instrument].name} {latest.value:g} on {latest.date}"
                if latest
                else "no recent score"
            ),
        },
        tuple(r for t in failed for r in t.evidence),
    )
    current = _current_trial(facts, knowledge)
    if current is not None:
        steps = [s.daily_dose_mg for s in current.dose_steps if s.daily_dose_mg is not None]
        dose = steps[-1] if steps else current.max_daily_dose_mg
        views.add(
            {
                "type": "current_trial",
                "id": f"current-{current.id}",
                "ingredient": current.ingredient,
                "drug_class": current.drug_class,
                "ongoing": current.ongoing,
                "tolerated": not current.stopped_for_adverse_effect,
                "dose_mg": dose,
                "label_max_dose_mg": current.label_max_dose_mg,
                "below_label_max": dose is not None
                and current.label_max_dose_mg is not None
                and dose < current.label_max_dose_mg,
                "at_adequate_dose": dose is not None
                and current.min_adequate_dose_mg is not None
                and dose >= current.min_adequate_dose_mg,
                "weeks_at_adequate_dose": current.weeks_at_adequate_dose,
                "outcome": current.outcome.outcome,
                "improvement_pct": current.outcome.improvement_pct,
            },
            {"label": _trial_label(current), "outcome_basis": current.outcome.basis},
            current.evidence,
        )
    intolerant = {r.ingredient for r in record.reactions} | {
        e.ingredient for e in record.exposures if e.stopped_for_adverse_effect
    }
    allergic = {r.ingredient for r in record.reactions if r.category == "allergy"}
    min_days = cfg["min_trial_weeks"] * 7
    used_by_agent: dict[str, list[Augmentation]] = {}
    for t in in_episode:
        for a in t.augmentations:
            used_by_agent.setdefault(a.ingredient, []).append(a)
    failed_ingredients = {t.ingredient for t in failed}
    for drug, dose_range in _agents(knowledge):
        if agents is not None and drug.ingredient not in agents:
            continue
        used = used_by_agent.get(drug.ingredient, [])
        adequately = any(a.start and a.end and (a.end - a.start).days + 1 >= min_days for a in used)
        reason = (
            "allergy on record"
            if drug.ingredient in allergic
            else "not tolerated before"
            if drug.ingredient in intolerant
            else "already tried adequately this episode"
            if adequately or drug.ingredient in failed_ingredients
            else ""
        )
        views.add(
            {
                "type": "agent",
                "id": f"agent-{drug.ingredient}",
                "ingredient": drug.ingredient,
                "drug_class": drug.drug_class,
                "excluded": bool(reason),
            },
            {"exclusion": reason or "none", "dose_range": dose_range},
            tuple(r for a in used for r in a.evidence),
        )
    recent_use = now - timedelta(days=cfg["medication_recent_days"])
    for treatment in ("esketamine", "ketamine", "ect", "rtms"):
        stops = [f for f in screened if f.code == _HARD_STOPS.get(treatment) and f.indicator == "critical"]
        cautions = [f for f in screened if f.code == _CAUTIONS.get(treatment) and f.indicator == "warning"]
        fact: dict[str, object] = {
            "type": "treatment",
            "id": f"treatment-{treatment}",
            "treatment": treatment,
            "contraindicated": bool(stops),
            "cautions": len(cautions),
        }
        display = {
            "reasons": "; ".join(f.summary for f in stops) or "none",
            "caution_list": "; ".join(f.summary for f in cautions) or "none",
        }
        evidence = [r for f in stops + cautions for r in f.evidence]
        if treatment in _DRUG_TREATMENTS:
            uses = [
                e
                for e in record.exposures
                if e.ingredient == treatment and not e.proposed and e.start is not None and e.start <= now
            ]
            lately = [e for e in uses if e.open_ended or e.end is None or e.end >= recent_use]
            fact["in_use"] = bool(lately)
            display["use_label"] = _use_label(uses) if lately else "not in use"
            evidence += [r for e in lately for r in e.evidence]
        elif treatment == "ect":
            since = now - timedelta(days=cfg["ect_course_gap_days"])
            running = [c for c in facts.courses if c.kind == "ect" and c.start <= now and c.end >= since]
            fact["in_use"] = bool(running)
            display["use_label"] = (
                f"{running[-1].sessions} session(s) since {running[-1].start}" if running else "not in use"
            )
            evidence += [r for c in running for r in c.evidence]
        views.add(fact, display, tuple(evidence))


def agent_scope(rules: StageRules) -> frozenset[str] | None:
    """The ingredients an `agent` pattern of these rules can match: the values of their `ingredient` tests (`==` or
    `in`). Which agents a rule offers is the rule author's choice, made in the rule files; a fact for any other
    ingredient could match nothing. None when some `agent` pattern does not name its ingredients."""
    named: set[str] = set()
    for rule in rules.rules:
        for pattern in rule.when:
            if pattern.type != "agent":
                continue
            values = [
                v
                for t in pattern.all
                if t.field == "ingredient" and t.op in ("==", "in")
                for v in (t.value if isinstance(t.value, list) else [t.value])
            ]
            if not values:
                return None
            named.update(str(v) for v in values)
    return frozenset(named)


@per_knowledge
def _agents(knowledge: Knowledge) -> tuple[tuple[Drug, str], ...]:
    """Every catalogued drug, in catalog order, with the dose range an `agent` fact shows."""
    agents = []
    for drug in knowledge.catalog.drugs.values():
        rng = drug.usual_range_mg
        agents.append((drug, _dose_range(rng.low, rng.high, rng.source) if rng else "see label"))
    return tuple(agents)


def _use_label(uses: Sequence[MedicationExposure]) -> str:
    """ "12 record(s), 2025-11-24 to 2026-01-12": how much of a treatment the record shows, and when. Records are
    the medication resources behind the exposures (each administration of a run of days counts), not the shared
    Medications they reference."""
    first = min(e.start for e in uses if e.start is not None)
    last = max((e.end or e.start) for e in uses if e.start is not None)
    ongoing = any(e.open_ended or e.end is None for e in uses)
    records = len({r for e in uses for r in e.evidence if not r.startswith("Medication/")})
    return f"{records} record(s) since {first}" if ongoing else f"{records} record(s), {first} to {last}"


def _trial_label(t: Trial) -> str:
    dose = f" {t.max_daily_dose_mg:g} mg" if t.max_daily_dose_mg is not None else ""
    weeks = f" for {t.weeks_total:g} weeks" if t.weeks_total is not None else ""
    if t.outcome.baseline_score is not None and t.outcome.end_score is not None and t.outcome.instrument:
        scores = f", scores {t.outcome.baseline_score:g} -> {t.outcome.end_score:g}"
    else:
        scores = ""
    return f"{t.ingredient}{dose}{weeks}{scores}: {t.outcome.outcome.replace('_', ' ')}"


def _dose_range(low: float, high: float, source: str) -> str:
    if high < 1:  # triiodothyronine and similar: micrograms read better
        return f"{low * 1000:g}-{high * 1000:g} mcg/day ({source})"
    return f"{low:g}-{high:g} mg/day ({source})"
