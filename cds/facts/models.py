"""Typed facts about one patient. The FHIR layer produces the record-level facts; the builders in this
package derive episodes and trials from them. Nothing here knows FHIR JSON or the rules engine."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ExposureKind = Literal["statement", "request", "dispense", "administration"]
IssueKind = Literal[
    "invalid_resource",
    "implausible_dose",
    "invalid_period",
    "future_date",
    "score_out_of_range",
    "unresolved_reference",
]
Adequacy = Literal["adequate", "inadequate_dose", "inadequate_duration", "unknown"]
Outcome = Literal["remission", "response", "partial_response", "nonresponse", "intolerance", "unknown"]


class Fact(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataIssue(Fact):
    kind: IssueKind
    ref: str  # "MedicationRequest/123", or "entry[4]" when the resource has no id
    message: str


class MedicationExposure(Fact):
    """One medication resource (statement, request or dispense) resolved to one catalog ingredient."""

    ref: str
    kind: ExposureKind
    ingredient: str
    role: str
    drug_class: str
    formulation: str
    medication_text: str
    start: date | None
    end: date | None
    end_is_estimate: bool = False  # end inferred (supply, superseded, open-ended to now), not recorded
    open_ended: bool = False  # still being taken at `now` as far as the record says
    proposed: bool = False  # a draft order being considered (CDS Hooks order-select/order-sign), not yet taken
    status: str | None = None
    daily_dose_mg: float | None = None
    dose_derivation: str = ""
    stopped_for_adverse_effect: bool = False
    reason_text: str | None = None
    indication_text: str | None = None
    evidence: tuple[str, ...] = ()


class Score(Fact):
    ref: str
    instrument: str
    value: float
    date: date


class Diagnosis(Fact):
    ref: str
    codes: tuple[str, ...]  # "system|code"
    text: str
    onset: date | None
    recorded: date | None
    active: bool
    is_depression: bool
    categories: tuple[str, ...] = ()  # ids of the configured condition value sets the codes fall in


class ProcedureRecord(Fact):
    """A Procedure in one of the configured procedure value sets (ECT, psychotherapy, ...)."""

    ref: str
    categories: tuple[str, ...]
    text: str
    start: date
    end: date
    bilateral: bool | None = None  # ECT electrode placement when the record says; None = not recorded


class LabResult(Fact):
    """A lab or vital sign in its canonical unit, with the range it was judged against."""

    ref: str
    analyte: str  # id from rules/catalog/observations.yaml, or "pregnancy_test" (value 1 positive, 0 negative)
    value: float
    date: date
    low: float | None = None
    high: float | None = None
    range_source: str | None = None  # "record" (the result's referenceRange) or "catalog" (default range)
    interpretation: str | None = None  # H / L / N / A from Observation.interpretation, when given


class UnidentifiedMedication(Fact):
    """A medication record that would count as taken but names no drug: no code in a terminology that names drugs,
    no name, or a reference to a Medication the record does not hold (a bulk export without Medication.ndjson).
    It could be an antidepressant, so it is a possible trial: unknown is not negative."""

    ref: str
    key: str  # what stands for the unknown drug (its codes or the reference): records of one drug count once
    start: date | None
    end: date | None
    reason: str


class AdherenceEvidence(Fact):
    """A record that an antidepressant was not taken as prescribed (MedicationStatement status not-taken)."""

    ref: str
    ingredient: str
    date: date | None
    reason: str | None = None


class AdverseReaction(Fact):
    """An AllergyIntolerance naming a catalog ingredient."""

    ref: str
    ingredient: str
    category: str  # allergy | intolerance | unknown
    onset: date | None


class PatientRecord(Fact):
    """What the FHIR layer read from one patient's record."""

    patient_ref: str | None
    birth_date: date | None = None
    exposures: tuple[MedicationExposure, ...] = ()
    scores: tuple[Score, ...] = ()
    diagnoses: tuple[Diagnosis, ...] = ()
    reactions: tuple[AdverseReaction, ...] = ()
    procedures: tuple[ProcedureRecord, ...] = ()
    labs: tuple[LabResult, ...] = ()
    nonadherence: tuple[AdherenceEvidence, ...] = ()
    unidentified: tuple[UnidentifiedMedication, ...] = ()
    issues: tuple[DataIssue, ...] = ()
    resource_count: int = 0


class Episode(Fact):
    start: date | None
    basis: str
    evidence: tuple[str, ...] = ()


class DoseStep(Fact):
    start: date
    end: date
    daily_dose_mg: float | None


class DoseRecord(Fact):
    """One medication resource behind a trial, and how its daily dose was derived (or why it is unknown)."""

    ref: str
    start: date | None
    end: date | None
    daily_dose_mg: float | None
    derivation: str


class Augmentation(Fact):
    ingredient: str
    drug_class: str
    start: date | None
    end: date | None
    evidence: tuple[str, ...] = ()


class TrialOutcome(Fact):
    outcome: Outcome
    instrument: str | None = None
    baseline_score: float | None = None
    baseline_date: date | None = None
    end_score: float | None = None
    end_date: date | None = None
    improvement_pct: float | None = None
    response_lost: bool = False
    basis: str = ""
    evidence: tuple[str, ...] = ()


class Trial(Fact):
    id: str
    ingredient: str
    rxnorm: str | None
    drug_class: str
    formulation: str
    start: date | None
    end: date | None
    ongoing: bool
    dates_known: bool
    in_current_episode: bool
    max_daily_dose_mg: float | None
    min_adequate_dose_mg: float | None
    min_dose_confidence: str | None
    label_max_dose_mg: float | None
    weeks_total: float | None
    weeks_at_adequate_dose: float
    weeks_dose_unknown: float
    stopped_for_adverse_effect: bool
    days_without_supply: int = 0  # bridged gaps inside the trial (no exposure on record those days)
    supply_based: bool = False  # every exposure is a pharmacy dispense: gaps are evidence about adherence
    dose_increased: bool = False  # a later documented dose above an earlier one (MGH dose optimisation)
    combined_with: tuple[str, ...] = ()  # other antidepressants added during this trial (MGH combination)
    added_to: str | None = None  # this trial was a second antidepressant added to that one: not a trial of its own
    dose_steps: tuple[DoseStep, ...] = ()
    dose_records: tuple[DoseRecord, ...] = ()
    augmentations: tuple[Augmentation, ...] = ()
    outcome: TrialOutcome
    evidence: tuple[str, ...] = ()


class TreatmentCourse(Fact):
    """Sessions of one non-drug treatment (ECT, psychotherapy) close enough in time to form a course."""

    id: str
    kind: Literal["ect", "psychotherapy"]
    start: date
    end: date
    sessions: int
    weeks: float
    bilateral: bool | None = None
    in_current_episode: bool = True
    outcome: TrialOutcome
    evidence: tuple[str, ...] = ()


class BaselineSeverity(Fact):
    """Severity at the start of the current episode (Maudsley severity item)."""

    instrument: str
    score: float
    date: date
    band: str | None
    msm_category: str | None
    evidence: tuple[str, ...] = ()


class ExcludedExposure(Fact):
    """An antidepressant exposure that is not an antidepressant trial (e.g. low-dose trazodone for sleep)."""

    id: str
    ingredient: str
    max_daily_dose_mg: float | None
    threshold_mg: float
    reason: str
    evidence: tuple[str, ...] = ()


class FactSet(Fact):
    """Everything the rules see about one patient at one evaluation time."""

    patient_ref: str | None
    now: date
    episode: Episode
    trials: tuple[Trial, ...] = ()
    excluded: tuple[ExcludedExposure, ...] = ()
    courses: tuple[TreatmentCourse, ...] = ()
    baseline_severity: BaselineSeverity | None = None
    psychotic_features: tuple[str, ...] = ()  # evidence: active Conditions with psychotic features
    comorbidities: dict[str, tuple[str, ...]] = Field(default_factory=dict)  # value set id -> Condition refs
    # Medication records in the current episode (or undated) that name no drug: possible trials.
    unidentified_medications: tuple[UnidentifiedMedication, ...] = ()
    issues: tuple[DataIssue, ...] = ()
    record: PatientRecord = Field(exclude=True)
