"""PatientRecord -> FactSet: the typed snapshot the rules evaluate."""

from __future__ import annotations

from datetime import date

from cds.facts.episode import current_episode
from cds.facts.models import FactSet, PatientRecord
from cds.facts.trials import build_trials
from cds.knowledge import Knowledge


def build_facts(record: PatientRecord, knowledge: Knowledge, now: date) -> FactSet:
    episode = current_episode(record.diagnoses, record.scores, knowledge)
    trials, excluded = build_trials(record.exposures, record.reactions, record.scores, episode, knowledge)
    return FactSet(
        patient_ref=record.patient_ref,
        now=now,
        episode=episode,
        trials=tuple(trials),
        excluded=tuple(excluded),
        issues=record.issues,
        record=record,
    )
