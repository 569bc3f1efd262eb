"""One screening row per patient, derived from an Evaluation; the column list is the table's contract.

Columns that depend on rule modules still being written are derived generically, so they fill in as those
modules land without a change here: flags and options from findings by ``category``; staging from an
``Evaluation.staging`` field when there is one (null until then).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from cds.evaluation import Evaluation

Row = dict[str, Any]

# name -> arrow type name ("string", "int64", "float64", "bool", "list<string>", "map<string,int64>")
COLUMNS: dict[str, str] = {
    "patient_id": "string",
    "evaluated": "bool",
    "error": "string",
    "trd_status": "string",
    "failed_adequate_trials": "int64",
    "trials": "int64",
    "trials_current_episode": "int64",
    "trials_adequate": "int64",
    "trials_inadequate": "int64",
    "trials_adequacy_unknown": "int64",
    "episode_start": "string",
    "staging_thase_rush_stage": "string",
    "staging_mgh_score": "float64",
    "staging_european_level": "string",
    "staging_maudsley_score": "float64",
    "staging_maudsley_category": "string",
    "confounder_flags": "list<string>",
    "safety_flags": "list<string>",
    "top_options": "list<string>",
    "finding_codes": "list<string>",
    "critical_findings": "int64",
    "warning_findings": "int64",
    "data_quality_issues": "int64",
    "data_quality": "map<string,int64>",
    "resources": "int64",
    "knowledge_version": "string",
    "now": "string",
}
# staging column -> path inside Evaluation.staging (attribute or key at each step)
STAGING: dict[str, tuple[str, str]] = {
    "staging_thase_rush_stage": ("thase_rush", "stage"),
    "staging_mgh_score": ("mgh", "score"),
    "staging_european_level": ("european", "level"),
    "staging_maudsley_score": ("maudsley", "score"),
    "staging_maudsley_category": ("maudsley", "category"),
}
TOP_OPTIONS = 3


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def _scalar(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "float64":
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    return str(value)


def _codes(ev: Evaluation, category: str) -> list[str]:
    return [f.code for f in ev.findings if f.category == category]


def row_from_evaluation(patient_id: str, ev: Evaluation) -> Row:
    trials = ev.trials
    adequacy = Counter(t.adequacy for t in trials if t.trial.in_current_episode)
    staging = getattr(ev, "staging", None)
    options = list(dict.fromkeys(_codes(ev, "next-step")))
    row: Row = {
        "patient_id": patient_id,
        "evaluated": True,
        "error": None,
        "trd_status": ev.trd_status,
        "failed_adequate_trials": ev.failed_adequate_trials,
        "trials": len(trials),
        "trials_current_episode": sum(1 for t in trials if t.trial.in_current_episode),
        "trials_adequate": adequacy.get("adequate", 0),
        "trials_inadequate": sum(n for a, n in adequacy.items() if a.startswith("inadequate")),
        "trials_adequacy_unknown": adequacy.get("unknown", 0),
        "episode_start": ev.episode.start.isoformat() if ev.episode.start else None,
        "confounder_flags": sorted(set(_codes(ev, "confounder"))),
        "safety_flags": sorted(set(_codes(ev, "safety"))),
        "top_options": options[:TOP_OPTIONS],
        "finding_codes": sorted({f.code for f in ev.findings}),
        "critical_findings": sum(1 for f in ev.findings if f.indicator == "critical"),
        "warning_findings": sum(1 for f in ev.findings if f.indicator == "warning"),
        "data_quality_issues": sum(ev.data_quality.values()),
        "data_quality": dict(sorted(ev.data_quality.items())),
        "resources": ev.resources_read,
        "knowledge_version": ev.knowledge_version,
        "now": ev.now.isoformat(),
    }
    for column, (group, field) in STAGING.items():
        row[column] = _scalar(_get(_get(staging, group), field), COLUMNS[column])
    return {name: row.get(name) for name in COLUMNS}


def error_row(patient_id: str, message: str, knowledge_version: str, now: str) -> Row:
    """A patient the engine could not evaluate (e.g. no usable resource): kept in the table, with the reason."""
    row: Row = dict.fromkeys(COLUMNS)
    row.update(
        patient_id=patient_id,
        evaluated=False,
        error=message,
        confounder_flags=[],
        safety_flags=[],
        top_options=[],
        finding_codes=[],
        data_quality={},
        knowledge_version=knowledge_version,
        now=now,
    )
    return row
