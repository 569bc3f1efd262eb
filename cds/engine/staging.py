"""Staging totals from the points the staging rules derived. Each model's `totals` block (rules/staging/*.yaml)
says how its points combine; this module only does that arithmetic and keeps every component's rule, text and
evidence so the total can always be explained."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cds.engine.base import FactView
from cds.engine.ir import Module, Totals
from cds.engine.staging_models import StagingComponent as StagingComponent
from cds.engine.staging_models import StagingResult as StagingResult
from cds.facts.construct import trusted
from cds.facts.models import FactSet
from cds.findings import Finding

_new_component = trusted(StagingComponent)
_result = trusted(StagingResult)  # StagingResult(**fields), cheaper (cds.facts.construct)


def _components(derived: Sequence[FactView], findings: Sequence[Finding]) -> dict[Any, list[StagingComponent]]:
    """Each model's components, from the points the staging rules derived, with the finding that explains each."""
    by_rule: dict[str, list[Finding]] = {}
    for f in findings:
        by_rule.setdefault(f.rule, []).append(f)
    out: dict[Any, list[StagingComponent]] = {}  # by model
    for fact in derived:
        if fact.get("type") != "staging_point":
            continue
        rule = str(fact["id"]).split("(", 1)[0]
        matching = by_rule.get(rule, [])
        subject = str(fact["id"]).split("(", 1)[1].rstrip(")")
        finding = next((f for f in matching if f.subject == subject), matching[0] if matching else None)
        out.setdefault(fact.get("model"), []).append(
            _new_component(
                {
                    "component": str(fact["component"]),
                    "points": float(fact["points"]),
                    "rule": rule,
                    "summary": finding.summary if finding else "",
                    "evidence": finding.evidence if finding else (),
                }
            )
        )
    for comps in out.values():
        comps.sort(key=lambda c: (c.component, c.rule, c.summary))
    return out


def _label(totals: Totals, value: float | None) -> str | None:
    if value is None:
        return None
    return totals.labels.get(str(int(value)) if float(value).is_integer() else str(value))


def total(totals: Totals, comps: list[StagingComponent]) -> StagingResult:
    """A model's result from its components (sorted by component, rule and summary)."""
    if totals.method == "level":
        return _level(totals, comps)
    if not comps:
        reason = totals.not_applicable or "no component applies"
        return _result({"model": totals.model, "computed": False, "reason": reason})
    missing = [c for c in totals.required_components if c not in {x.component for x in comps}]
    if missing:
        return _result(
            {
                "model": totals.model,
                "computed": False,
                "reason": f"not computable: no data for {', '.join(missing)}",
                "components": tuple(comps),
            }
        )
    value = max(c.points for c in comps) if totals.method == "max" else sum(c.points for c in comps)
    category = next((c.label for c in totals.categories if c.min <= value <= c.max), None)
    return _result(
        {
            "model": totals.model,
            "computed": True,
            "value": value,
            "label": _label(totals, value),
            "category": category,
            "components": tuple(comps),
        }
    )


def _level(totals: Totals, comps: list[StagingComponent]) -> StagingResult:
    levels = [c for c in comps if c.component == "level"]
    weeks = [c for c in comps if c.component == "weeks-level"]
    if not levels:
        return _result(
            {
                "model": totals.model,
                "computed": False,
                "reason": "no failed adequate trial in the current episode",
                "components": tuple(comps),
            }
        )
    value = max(c.points for c in levels)
    by_count = max((c.points for c in levels if c.points < 7), default=None)  # 7 = CRD, set by duration
    weeks_level = min((c.points for c in weeks), default=None)
    details: dict[str, Any] = {
        "level_by_trial_count": _label(totals, by_count),
        "level_by_weeks": _label(totals, weeks_level),
        # TRD levels only: the weeks column has no "non-responder" band.
        "levels_disagree": bool(weeks)
        and by_count is not None
        and by_count >= 2
        and by_count not in {c.points for c in weeks},
    }
    return _result(
        {
            "model": totals.model,
            "computed": True,
            "value": value,
            "label": _label(totals, value),
            "components": tuple(c for c in comps if c.component == "level"),
            "details": details,
        }
    )


def dm_trd(facts: FactSet) -> StagingResult:
    """DM-TRD is not scored: its item table (Peeters et al., J Affect Disord 2016;205:365-371) was not found in
    any source we could read. Its inputs are captured so a scorer can be added once a clinician supplies it."""
    psychotherapy = [c for c in facts.courses if c.kind == "psychotherapy" and c.in_current_episode]
    trials = [t for t in facts.trials if t.in_current_episode]
    inputs: dict[str, Any] = {
        "episode_start": facts.episode.start.isoformat() if facts.episode.start else None,
        "baseline_severity": facts.baseline_severity.band if facts.baseline_severity else None,
        "functional_impairment": "not captured: no coded instrument for it in the project reference",
        "comorbid_anxiety": list(facts.comorbidities.get("anxiety-disorders", ())),
        "personality_disorder": list(facts.comorbidities.get("personality-disorders", ())),
        "psychosocial_stressors": list(facts.comorbidities.get("psychosocial-stressors", ())),
        "psychotherapy_courses": [
            {
                "start": c.start.isoformat(),
                "end": c.end.isoformat(),
                "sessions": c.sessions,
                "weeks": c.weeks,
                "outcome": c.outcome.outcome,
                "evidence": list(c.evidence),
            }
            for c in psychotherapy
        ],
        "intensification": [
            {"trial": t.ingredient, "dose_increased": t.dose_increased, "combined_with": list(t.combined_with)}
            for t in trials
            if t.dose_increased or t.combined_with
        ],
        "augmentation": [
            {
                "trial": t.ingredient,
                "agent": a.ingredient,
                "class": a.drug_class,
                "start": a.start.isoformat() if a.start else None,
                "end": a.end.isoformat() if a.end else None,
            }
            for t in trials
            for a in t.augmentations
        ],
        "ect_courses": [
            {
                "start": c.start.isoformat(),
                "sessions": c.sessions,
                "bilateral": c.bilateral,
                "outcome": c.outcome.outcome,
            }
            for c in facts.courses
            if c.kind == "ect" and c.in_current_episode
        ],
    }
    return _result(
        {
            "model": "dm_trd",
            "computed": False,
            "reason": "the DM-TRD item table (Peeters et al., J Affect Disord 2016;205:365-371) was not "
            "available to the project; its inputs are listed for a clinician",
            "details": {"inputs": inputs},
        }
    )


def compute(
    modules: Sequence[Module],
    derived: Sequence[FactView],
    findings: Sequence[Finding],
    facts: FactSet,
    summary: FactView | None = None,
) -> dict[str, StagingResult]:
    components = _components(derived, findings)
    results = {m.totals.model: total(m.totals, components.get(m.totals.model, [])) for m in modules if m.totals}
    if "european" in results and summary is not None:
        weeks = summary.get("cumulative_adequate_weeks")
        r = results["european"]
        results["european"] = _result.replace(r, {"details": {**r.details, "cumulative_adequate_weeks": weeks}})
    results["dm_trd"] = dm_trd(facts)
    return results
