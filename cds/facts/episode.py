"""Where the current depressive episode starts: from the diagnosis onset, and from sustained remission."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from cds.facts.construct import trusted
from cds.facts.models import Diagnosis, Episode, Score
from cds.knowledge import Knowledge

_episode = trusted(Episode)  # Episode(**fields), cheaper (cds.facts.construct)


def current_episode(diagnoses: Sequence[Diagnosis], scores: Sequence[Score], knowledge: Knowledge) -> Episode:
    """Latest of (a) the onset of the newest active depression diagnosis and (b) the first depressive score
    after remission-range scores sustained for the configured episode gap (ATHF convention)."""
    start: date | None = None
    basis = "no dated depression diagnosis: every trial on record is counted"
    evidence: tuple[str, ...] = ()
    onsets = [d for d in diagnoses if d.is_depression and d.active and d.onset is not None]
    if onsets:
        newest = max(onsets, key=lambda d: (d.onset, d.ref))
        start, basis, evidence = (
            newest.onset,
            f"onset of {newest.text or 'depression diagnosis'}",
            (newest.ref,),
        )
    relapse = _first_score_after_euthymia(scores, knowledge)
    if relapse is not None and (start is None or relapse.date > start):
        gap = knowledge.config["episode_gap_days"]
        start = relapse.date
        basis = f"first depressive score after at least {gap:g} days of remission-range scores"
        evidence = (relapse.ref,)
    return _episode({"start": start, "basis": basis, "evidence": evidence})


def _first_score_after_euthymia(scores: Sequence[Score], knowledge: Knowledge) -> Score | None:
    gap = knowledge.config["episode_gap_days"]
    found: Score | None = None
    run_start: Score | None = None
    last_remitted: Score | None = None
    for score in sorted(scores, key=lambda s: (s.date, s.ref)):
        cut = knowledge.instruments.remission_max(score.instrument)
        if cut is None:
            continue
        if score.value <= cut.value:
            run_start = run_start or score
            last_remitted = score
            continue
        if run_start and last_remitted and (last_remitted.date - run_start.date).days >= gap:
            found = score
        run_start = None
    return found
