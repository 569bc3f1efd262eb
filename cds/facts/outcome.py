"""Outcome of one trial from depression scores: baseline before the trial vs the score at its end."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import date, timedelta

from cds.facts.construct import trusted
from cds.facts.models import Outcome, Score, TrialOutcome
from cds.knowledge import Knowledge

_outcome = trusted(TrialOutcome)  # TrialOutcome(**fields), cheaper (cds.facts.construct)


class ScoreIndex:
    """Scores per instrument in date order, so each trial's windows are found by bisection (a long history
    has hundreds of trials and scores: scanning all scores for every trial would grow quadratically)."""

    def __init__(self, scores: Sequence[Score]) -> None:
        self._by_instrument: dict[str, list[Score]] = {}
        for s in sorted(scores, key=lambda s: (s.date, s.ref)):
            self._by_instrument.setdefault(s.instrument, []).append(s)
        self._dates = {k: [s.date for s in v] for k, v in self._by_instrument.items()}

    def between(self, instrument: str, lo: date, hi: date) -> list[Score]:
        dates = self._dates.get(instrument)
        if not dates:
            return []
        return self._by_instrument[instrument][bisect_left(dates, lo) : bisect_right(dates, hi)]


def classify(knowledge: Knowledge, instrument: str, end_score: float, improvement_pct: float) -> Outcome:
    cfg = knowledge.config
    cut = knowledge.instruments.remission_max(instrument)
    if cut is not None and end_score <= cut.value:
        return "remission"
    if improvement_pct >= cfg["response_min_improvement_pct"]:
        return "response"
    if improvement_pct >= cfg["partial_response_min_improvement_pct"]:
        return "partial_response"
    return "nonresponse"


def assess_outcome(
    *,
    start: date | None,
    end: date | None,
    weeks_at_adequate_dose: float,
    stopped_for_adverse_effect: bool,
    ongoing: bool,
    scores: ScoreIndex,
    knowledge: Knowledge,
    adverse_evidence: tuple[str, ...] = (),
) -> TrialOutcome:
    cfg = knowledge.config
    if stopped_for_adverse_effect and not ongoing and weeks_at_adequate_dose < cfg["min_trial_weeks"]:
        return _outcome(
            {
                "outcome": "intolerance",
                "basis": "stopped with a documented adverse effect before an adequate trial was completed",
                "evidence": adverse_evidence,
            }
        )
    if start is None or end is None:
        return _outcome({"outcome": "unknown", "basis": "trial dates are not known"})
    base_lo = start - timedelta(days=cfg["baseline_days_before_start"])
    base_hi = start + timedelta(days=cfg["baseline_days_after_start"])
    end_lo = end - timedelta(days=cfg["end_score_days_before_end"])
    end_hi = end + timedelta(days=cfg["end_score_days_after_end"])
    reason = "no baseline score"
    for instrument in knowledge.instruments.instruments:
        baselines = scores.between(instrument, base_lo, base_hi)
        if not baselines:
            continue
        baseline = baselines[-1]
        later = [s for s in scores.between(instrument, baseline.date, end_hi) if s.date > baseline.date]
        finals = [s for s in later if s.date >= end_lo]
        if not finals:
            reason = "no score at the end of the trial"
            continue
        final = finals[-1]
        result = _compare(knowledge, instrument, baseline, final, later)
        early = cfg["early_stop_weeks"]
        if not ongoing and (end - start).days + 1 < early * 7 and result.outcome in ("nonresponse", "partial_response"):
            # EU-PEARL: stopped before the end of week 4 without evidence of nonresponse is not evaluable.
            result = _outcome.replace(
                result, {"basis": f"{result.basis}; stopped before week {early:g}, too early to judge nonresponse"}
            )
        return result
    return _outcome({"outcome": "unknown", "basis": reason})


def _compare(
    knowledge: Knowledge, instrument: str, baseline: Score, final: Score, during: Sequence[Score]
) -> TrialOutcome:
    name = knowledge.instruments.instruments[instrument].name
    evidence: tuple[str, ...] = (baseline.ref, final.ref)
    cut = knowledge.instruments.remission_max(instrument)
    if baseline.value <= 0 or (cut is not None and baseline.value <= cut.value):
        return _outcome(
            {
                "outcome": "unknown",
                "instrument": instrument,
                "baseline_score": baseline.value,
                "baseline_date": baseline.date,
                "basis": f"baseline {name} {baseline.value:g} is already in the remission range",
                "evidence": (baseline.ref,),
            }
        )
    improvement = round((baseline.value - final.value) / baseline.value * 100.0, 1)
    outcome = classify(knowledge, instrument, final.value, improvement)
    lost = False
    basis = f"{name} {baseline.value:g} -> {final.value:g} ({improvement:g}% improvement)"
    if outcome in ("partial_response", "nonresponse"):
        best = min((s for s in during if s.date < final.date), key=lambda s: s.value, default=None)
        if best is not None:
            best_pct = (baseline.value - best.value) / baseline.value * 100.0
            if classify(knowledge, instrument, best.value, best_pct) in ("remission", "response"):
                outcome, lost = "response", True
                basis += f"; earlier {best.value:g} on {best.date} was a response, later lost"
                evidence = (*evidence, best.ref)
    return _outcome(
        {
            "outcome": outcome,
            "instrument": instrument,
            "baseline_score": baseline.value,
            "baseline_date": baseline.date,
            "end_score": final.value,
            "end_date": final.date,
            "improvement_pct": improvement,
            "response_lost": lost,
            "basis": basis,
            "evidence": evidence,
        }
    )
