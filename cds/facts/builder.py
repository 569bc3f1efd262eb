"""PatientRecord -> FactSet: the typed snapshot the rules evaluate."""

from __future__ import annotations

from datetime import date

from cds.facts.construct import trusted
from cds.facts.courses import baseline_severity, build_courses, mark_optimisations
from cds.facts.episode import current_episode
from cds.facts.models import FactSet, PatientRecord
from cds.facts.trials import build_trials
from cds.knowledge import Knowledge


def build_facts(record: PatientRecord, knowledge: Knowledge, now: date) -> FactSet:
    episode = current_episode(record.diagnoses, record.scores, knowledge)
    trials, excluded = build_trials(record.exposures, record.reactions, record.scores, episode, knowledge)
    refs: dict[str, list[str]] = {
        vs: [] for vs in knowledge.config.valuesets.conditions if vs != "depression-conditions"
    }
    for d in record.diagnoses:
        if d.active:
            for vs in dict.fromkeys(d.categories):  # one pass over the diagnoses, not one per value set
                if vs in refs:
                    refs[vs].append(d.ref)
    comorbid = {vs: tuple(r) for vs, r in refs.items()}
    # As for trials (cds/facts/trials.py): in the episode unless it ended before the episode started.
    unidentified = tuple(
        u for u in record.unidentified if episode.start is None or u.end is None or u.end >= episode.start
    )
    return _fact_set(
        {
            "patient_ref": record.patient_ref,
            "now": now,
            "episode": episode,
            "trials": tuple(mark_optimisations(trials, knowledge)),
            "excluded": tuple(excluded),
            "courses": tuple(build_courses(record.procedures, record.scores, episode, knowledge)),
            "baseline_severity": baseline_severity(record.scores, episode, knowledge),
            "psychotic_features": comorbid.get("psychotic-features", ()),
            "comorbidities": {k: v for k, v in comorbid.items() if v},
            "unidentified_medications": unidentified,
            "issues": record.issues,
            "record": record,
        }
    )


_fact_set = trusted(FactSet)  # FactSet(**fields), cheaper (cds.facts.construct)
