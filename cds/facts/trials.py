"""Group medication exposures into antidepressant trials and measure each one.

A trial is one ingredient taken continuously (gaps up to the configured trial gap are bridged). For each
trial we follow the dose over time and count the weeks at or above the minimum adequate dose; days whose
dose is not documented are counted separately, so that missing data stays visible instead of reading as
an inadequate dose.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from itertools import pairwise

from cds.facts.construct import trusted
from cds.facts.models import (
    AdverseReaction,
    Augmentation,
    DoseRecord,
    DoseStep,
    Episode,
    ExcludedExposure,
    MedicationExposure,
    Score,
    Trial,
)
from cds.facts.outcome import ScoreIndex, assess_outcome
from cds.knowledge import Knowledge

_DAY = timedelta(days=1)
# Constructors for values typed code made (cds.facts.construct): a long history makes thousands.
_dose_step, _dose_record, _trial = trusted(DoseStep), trusted(DoseRecord), trusted(Trial)
_augmentation, _excluded = trusted(Augmentation), trusted(ExcludedExposure)
_exposure = trusted(MedicationExposure)


class _Group:
    """One ingredient's exposures that make one trial. Plain classes here and below: in the compiled build a
    dataclass's generated __init__ runs interpreted."""

    def __init__(
        self,
        ingredient: str,
        exposures: Sequence[MedicationExposure] = (),
        undated: list[MedicationExposure] | None = None,
    ) -> None:
        self.ingredient = ingredient
        self.exposures: list[MedicationExposure] = []
        self.undated: list[MedicationExposure] = [] if undated is None else undated
        self.start: date | None = None
        self.end: date | None = None
        self.end_unknown = False
        for e in exposures:
            self.add(e)

    def add(self, e: MedicationExposure) -> None:
        """Keep start and end up to date as exposures join (a long history has thousands of them)."""
        self.exposures.append(e)
        if e.start is not None and (self.start is None or e.start < self.start):
            self.start = e.start
        if e.end is None:
            self.end_unknown = True
        elif self.end is None or e.end > self.end:
            self.end = e.end
        if self.end_unknown:
            self.end = None


def _is_trial_drug(exposure: MedicationExposure, knowledge: Knowledge) -> bool:
    if exposure.role != "antidepressant":
        return False
    drug = knowledge.catalog.get(exposure.ingredient)
    return drug is None or drug.route is None or drug.route == exposure.formulation


def _supersede(exposures: list[MedicationExposure]) -> list[MedicationExposure]:
    """An exposure whose end was inferred stops where the next exposure of the same ingredient starts (a new
    prescription replaces the old one; e.g. a dose change). Administrations are doses given, not prescriptions:
    they replace nothing (an inpatient stay does not end the prescription it falls within)."""
    # exposures are sorted by start: the first later start is found by bisection
    starts = [e.start for e in exposures if e.kind != "administration" and e.start is not None]
    out: list[MedicationExposure] = []
    for exp in exposures:
        if exp.start is not None and exp.end is not None and exp.end_is_estimate:
            k = bisect_right(starts, exp.start)
            if k < len(starts) and exp.end >= starts[k]:
                update = {"end": starts[k] - _DAY, "end_is_estimate": True, "open_ended": False}
                exp = _exposure.replace(exp, update)
        out.append(exp)
    return out


def _group(exposures: Sequence[MedicationExposure], gap_days: float) -> list[_Group]:
    by_ingredient: dict[str, list[MedicationExposure]] = defaultdict(list)
    for exp in exposures:
        by_ingredient[exp.ingredient].append(exp)
    groups: list[_Group] = []
    for ingredient, items in sorted(by_ingredient.items()):
        dated = _supersede(sorted((e for e in items if e.start), key=lambda e: (e.start, e.ref)))
        undated = [e for e in items if e.start is None]
        own: list[_Group] = []
        for exp in dated:
            cur = own[-1] if own else None
            if (
                cur is not None
                and cur.end is not None
                and exp.start is not None
                and exp.end is None
                and (cur.start is not None and cur.start <= exp.start <= cur.end)
            ):
                # Inside a documented span, an exposure with an unknown end adds evidence, not uncertainty.
                cur.undated.append(exp)
            elif (
                cur is not None
                and cur.end is not None
                and exp.start is not None
                and (exp.start - cur.end).days <= gap_days + 1
            ):
                cur.add(exp)
            else:
                own.append(_Group(ingredient, [exp]))
        if own:
            own[-1].undated.extend(undated)
        elif undated:
            own.append(_Group(ingredient, [], undated))
        groups.extend(own)
    return groups


class _DoseProfile:
    def __init__(self) -> None:
        self.days_adequate = 0
        self.days_unknown = 0
        self.days_gap = 0
        self.max_dose: float | None = None
        self.steps: list[DoseStep] = []


def _dose_profile(group: _Group, min_dose: float | None) -> _DoseProfile:
    """Walk the trial day-interval by day-interval (between exposure boundaries), not day by day."""
    profile = _DoseProfile()
    start, end = group.start, group.end
    if start is None or end is None:
        known = [e.daily_dose_mg for e in group.exposures + group.undated if e.daily_dose_mg is not None]
        profile.max_dose = max(known) if known else None
        return profile
    cuts = {start, end + _DAY}
    for e in group.exposures:
        if e.start and e.end:
            cuts.update({e.start, e.end + _DAY})
    points = sorted(c for c in cuts if start <= c <= end + _DAY)
    previous: tuple[bool, float | None] | None = None
    pending = sorted((e for e in group.exposures if e.start and e.end), key=lambda e: e.start or date.min)
    active: list[MedicationExposure] = []
    spans: list[tuple[date, date, float | None]] = []  # (start, end, dose) of each step, made facts at the end
    k = 0
    for lo, hi in pairwise(points):
        # sweep: exposures join when they start and leave after they end, so each is visited a few times only
        while k < len(pending) and (pending[k].start or date.max) <= lo:
            active.append(pending[k])
            k += 1
        active = [e for e in active if e.end is not None and e.end >= lo]
        covering = active
        if covering:
            doses = [e.daily_dose_mg for e in covering if e.daily_dose_mg is not None]
            current: tuple[bool, float | None] = (bool(doses), max(doses) if doses else None)
        elif previous is not None:
            current = previous  # a bridged gap continues the trial as it was
            profile.days_gap += (hi - lo).days
        else:
            current = (False, None)
        previous = current
        days = (hi - lo).days
        has_dose, dose = current
        if not has_dose or dose is None:
            profile.days_unknown += days
        elif min_dose is not None and dose >= min_dose:
            profile.days_adequate += days
        if has_dose and dose is not None:
            profile.max_dose = dose if profile.max_dose is None else max(profile.max_dose, dose)
        if spans and spans[-1][2] == dose and spans[-1][1] == lo - _DAY:
            spans[-1] = (spans[-1][0], hi - _DAY, dose)
        else:
            spans.append((lo, hi - _DAY, dose))
    profile.steps = [_dose_step({"start": s, "end": e, "daily_dose_mg": d}) for s, e, d in spans]
    return profile


def _augmentations(
    start: date | None, end: date | None, augmenting: Sequence[MedicationExposure]
) -> tuple[Augmentation, ...]:
    if start is None:
        return ()
    # Merged as plain values, made facts once per ingredient (a long history overlaps a trial many times).
    merged: dict[str, tuple[str, date, date | None, tuple[str, ...]]] = {}
    for exp in augmenting:
        if exp.start is None:
            continue
        exp_end = exp.end or exp.start
        if exp.start > (end or exp.start) or exp_end < start:
            continue
        prior = merged.get(exp.ingredient)
        if prior is None:
            merged[exp.ingredient] = (exp.drug_class, exp.start, exp.end, exp.evidence)
        else:
            drug_class, prior_start, prior_end, evidence = prior
            merged[exp.ingredient] = (
                drug_class,
                min(prior_start, exp.start),
                None if prior_end is None or exp.end is None else max(prior_end, exp.end),
                tuple(dict.fromkeys(evidence + exp.evidence)),
            )
    return tuple(
        _augmentation(
            {
                "ingredient": k,
                "drug_class": merged[k][0],
                "start": merged[k][1],
                "end": merged[k][2],
                "evidence": merged[k][3],
            }
        )
        for k in sorted(merged)
    )


def build_trials(
    exposures: Sequence[MedicationExposure],
    reactions: Sequence[AdverseReaction],
    scores: Sequence[Score],
    episode: Episode,
    knowledge: Knowledge,
) -> tuple[list[Trial], list[ExcludedExposure]]:
    cfg = knowledge.config
    taken = [e for e in exposures if not e.proposed]  # a draft order is not (yet) a trial
    candidates = [e for e in taken if _is_trial_drug(e, knowledge)]
    augmenting = [e for e in taken if e.role == "augmenting_agent"]
    score_index = ScoreIndex(scores)
    groups = _group(candidates, cfg["trial_gap_days"])
    groups.sort(key=lambda g: (g.start is None, g.start or date.min, g.ingredient))
    trials: list[Trial] = []
    excluded: list[ExcludedExposure] = []
    for group in groups:
        drug = knowledge.catalog.get(group.ingredient)
        members = group.exposures + group.undated
        best = max(members, key=lambda e: e.daily_dose_mg or -1.0)
        formulation = best.formulation
        min_dose = drug.min_dose(formulation) if drug else None
        max_label = drug.max_dose(formulation) if drug else None
        profile = _dose_profile(group, min_dose.value if min_dose else None)
        evidence = tuple(dict.fromkeys(ref for e in members for ref in e.evidence))
        hypnotic = drug.non_antidepressant_dose_max_mg if drug else None
        if (
            hypnotic is not None
            and profile.max_dose is not None
            and profile.max_dose <= hypnotic.value
            and profile.days_unknown == 0
            and all(e.daily_dose_mg is not None for e in members)
        ):
            excluded.append(
                _excluded(
                    {
                        "id": f"excluded-{len(excluded) + 1}",
                        "ingredient": group.ingredient,
                        "max_daily_dose_mg": profile.max_dose,
                        "threshold_mg": hypnotic.value,
                        "reason": hypnotic.note or "dose in the non-antidepressant range",
                        "evidence": evidence,
                    }
                )
            )
            continue
        start, end = group.start, group.end
        dates_known = start is not None and end is not None
        ongoing = (
            dates_known
            and any(e.open_ended for e in group.exposures)
            and end == max((e.end for e in group.exposures if e.end), default=None)
        )
        weeks_total = round(((end - start).days + 1) / 7.0, 1) if start and end else None
        adverse_refs = tuple(e.ref for e in members if e.stopped_for_adverse_effect)
        adverse_refs += tuple(
            r.ref
            for r in reactions
            if r.ingredient == group.ingredient
            and start is not None
            and (
                r.onset is None
                or start <= r.onset <= (end or r.onset) + timedelta(days=cfg["adverse_reaction_days_after_end"])
            )
        )
        weeks_adequate = round(profile.days_adequate / 7.0, 1) if dates_known else 0.0
        outcome = assess_outcome(
            start=start,
            end=end,
            weeks_at_adequate_dose=weeks_adequate,
            stopped_for_adverse_effect=bool(adverse_refs),
            ongoing=ongoing,
            scores=score_index,
            knowledge=knowledge,
            adverse_evidence=adverse_refs,
        )
        in_episode = episode.start is None or end is None or end >= episode.start
        trials.append(
            _trial(
                {
                    "id": f"trial-{len(trials) + 1}",
                    "ingredient": group.ingredient,
                    "rxnorm": drug.rxnorm[0] if drug and drug.rxnorm else None,
                    "drug_class": drug.drug_class if drug else best.drug_class,
                    "formulation": formulation,
                    "start": start,
                    "end": end,
                    "ongoing": ongoing,
                    "dates_known": dates_known,
                    "in_current_episode": in_episode,
                    "max_daily_dose_mg": profile.max_dose,
                    "min_adequate_dose_mg": min_dose.value if min_dose else None,
                    "min_dose_confidence": min_dose.confidence if min_dose else None,
                    "label_max_dose_mg": max_label.value if max_label else None,
                    "weeks_total": weeks_total,
                    "weeks_at_adequate_dose": weeks_adequate,
                    "weeks_dose_unknown": round(profile.days_unknown / 7.0, 1) if dates_known else 0.0,
                    "stopped_for_adverse_effect": bool(adverse_refs),
                    "days_without_supply": profile.days_gap,
                    "supply_based": bool(group.exposures) and all(e.kind == "dispense" for e in group.exposures),
                    "dose_steps": tuple(profile.steps),
                    "dose_records": tuple(
                        _dose_record(
                            {
                                "ref": e.ref,
                                "start": e.start,
                                "end": e.end,
                                "daily_dose_mg": e.daily_dose_mg,
                                "derivation": e.dose_derivation,
                            }
                        )
                        for e in members
                    ),
                    "augmentations": _augmentations(start, end, augmenting),
                    "outcome": outcome,
                    "evidence": tuple(dict.fromkeys(evidence + outcome.evidence)),
                }
            )
        )
    return trials, excluded
