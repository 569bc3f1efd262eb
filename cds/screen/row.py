"""One screening row per patient, derived from an Evaluation; the column list is the table's contract.

Flags and options are derived from findings by ``category``, so new rule modules fill them in without a change
here. Staging columns are named fields of ``Evaluation.staging``'s results (``StagingResult``): null when the
model could not be computed for the patient (the evaluation says why), never a guess.
"""

from __future__ import annotations

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
    "treatments_in_use": "list<string>",
    "finding_codes": "list<string>",
    "critical_findings": "int64",
    "warning_findings": "int64",
    "data_quality_issues": "int64",
    "data_quality": "map<string,int64>",
    "resources": "int64",
    "knowledge_version": "string",
    "now": "string",
}
# staging column -> (model, field of its StagingResult): the Thase-Rush stage and the European level are labels
# ("II", "trd_level_2"), the MGH and Maudsley scores values, the Maudsley category its band.
STAGING: dict[str, tuple[str, str]] = {
    "staging_thase_rush_stage": ("thase_rush", "label"),
    "staging_mgh_score": ("mgh", "value"),
    "staging_european_level": ("european", "label"),
    "staging_maudsley_score": ("maudsley", "value"),
    "staging_maudsley_category": ("maudsley", "category"),
}
TOP_OPTIONS = 3


def _scalar(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "float64":
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    return str(value)


def row_from_evaluation(patient_id: str, ev: Evaluation) -> Row:
    """The row of one evaluated patient (one pass over trials and over findings)."""
    in_episode = adequate = inadequate = unknown = 0
    for t in ev.trials:
        if t.trial.in_current_episode:
            in_episode += 1
            if t.adequacy == "adequate":
                adequate += 1
            elif t.adequacy == "unknown":
                unknown += 1
            elif t.adequacy.startswith("inadequate"):
                inadequate += 1
    codes: set[str] = set()
    confounders: set[str] = set()
    safety: set[str] = set()
    options: dict[str, None] = {}  # eligible next-step codes in the engine's order, first occurrence
    in_use: set[str] = set()  # treatments a next-step rule found already under way (e.g. esketamine)
    critical = warning = 0
    for f in ev.findings:
        code, category, indicator = f.code, f.category, f.indicator
        codes.add(code)
        if category == "confounder":
            confounders.add(code)
        elif category == "safety":
            safety.add(code)
        elif category == "next-step":
            attributes = f.attributes
            if attributes.get("in_use") is True:
                in_use.add(str(attributes.get("treatment") or code))
            elif attributes.get("eligible") is not False:
                options.setdefault(code)
        if indicator == "critical":
            critical += 1
        elif indicator == "warning":
            warning += 1
    stage: Row = {}
    for column, (model, field) in STAGING.items():
        result = ev.staging.get(model)
        # a field name that StagingResult lacks raises here: no column silently null
        value = getattr(result, field) if result is not None and result.computed else None
        stage[column] = _scalar(value, COLUMNS[column])
    return {
        "patient_id": patient_id,
        "evaluated": True,
        "error": None,
        "trd_status": ev.trd_status,
        "failed_adequate_trials": ev.failed_adequate_trials,
        "trials": len(ev.trials),
        "trials_current_episode": in_episode,
        "trials_adequate": adequate,
        "trials_inadequate": inadequate,
        "trials_adequacy_unknown": unknown,
        "episode_start": ev.episode.start.isoformat() if ev.episode.start else None,
        **stage,
        "confounder_flags": sorted(confounders),
        "safety_flags": sorted(safety),
        "top_options": list(options)[:TOP_OPTIONS],
        "treatments_in_use": sorted(in_use),
        "finding_codes": sorted(codes),
        "critical_findings": critical,
        "warning_findings": warning,
        "data_quality_issues": sum(ev.data_quality.values()),
        "data_quality": dict(sorted(ev.data_quality.items())),
        "resources": ev.resources_read,
        "knowledge_version": ev.knowledge_version,
        "now": ev.now.isoformat(),
    }


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
        treatments_in_use=[],
        finding_codes=[],
        data_quality={},
        knowledge_version=knowledge_version,
        now=now,
    )
    return row


def crash_message(exit_code: int | None) -> str:
    """The error of a patient whose evaluation killed its process twice (local runner and Spark alike)."""
    return f"EngineCrash: the process evaluating this patient died twice (last exit code {exit_code}); not evaluated"
