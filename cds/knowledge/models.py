"""Typed knowledge: drug catalog entries, instruments and site settings, each value with its provenance."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Confidence = Literal["C", "S", "U"]
DrugRole = Literal["antidepressant", "augmenting_agent", "rapid_acting", "other"]
Formulation = Literal["immediate_release", "extended_release", "transdermal"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourcedValue(_Frozen):
    """A number with clinical meaning, never without its source and confidence tag."""

    value: float
    source: str
    confidence: Confidence
    note: str | None = None
    profile: str | None = None

    @property
    def needs_review(self) -> bool:
        return self.confidence != "C"


class Source(_Frozen):
    label: str
    url: str | None = None
    locator: str | None = None
    confidence: Confidence | None = None
    note: str | None = None


class UsualRange(_Frozen):
    low: float
    high: float
    source: str
    confidence: Confidence
    note: str | None = None


class FormulationDoses(_Frozen):
    formulation: Formulation
    qualifier: str | None = None
    usual_range_mg: UsualRange | None = None
    min_adequate_dose_mg: SourcedValue | None = None
    label_max_dose_mg: SourcedValue | None = None
    note: str | None = None


class SaltEquivalence(_Frozen):
    salt: str
    factor: float
    source: str
    confidence: Confidence
    note: str | None = None


class Drug(_Frozen):
    ingredient: str
    role: DrugRole
    drug_class: str
    rxnorm: tuple[str, ...] = ()
    rxnorm_confidence: Confidence | None = None
    rxnorm_sources: tuple[str, ...] = ()
    atc: tuple[str, ...] = ()
    atc_confidence: Confidence | None = None
    atc_sources: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    min_adequate_dose_mg: SourcedValue | None = None
    label_max_dose_mg: SourcedValue | None = None
    label_max_inpatient_dose_mg: SourcedValue | None = None
    capped_max_dose_mg: SourcedValue | None = None
    monitoring: dict[str, Any] | None = None
    usual_range_mg: UsualRange | None = None
    formulation_doses: tuple[FormulationDoses, ...] = ()
    non_antidepressant_dose_max_mg: SourcedValue | None = None
    serotonergic_washout_days: SourcedValue | None = None  # before an MAOI may start, when longer than the default
    salt_equivalence: tuple[SaltEquivalence, ...] = ()
    dose_unit: str = "mg/day"
    route: str | None = None
    needs_clinical_review: bool = False
    note: str | None = None

    def min_dose(self, formulation: str | None) -> SourcedValue | None:
        for f in self.formulation_doses:
            if f.formulation == formulation and f.min_adequate_dose_mg is not None:
                return f.min_adequate_dose_mg
        return self.min_adequate_dose_mg

    def max_dose(self, formulation: str | None) -> SourcedValue | None:
        for f in self.formulation_doses:
            if f.formulation == formulation and f.label_max_dose_mg is not None:
                return f.label_max_dose_mg
        return self.label_max_dose_mg


class DrugCatalogFile(_Frozen):
    version: str
    sources: dict[str, Source] = Field(default_factory=dict)
    drugs: tuple[Drug, ...]


class Coding(_Frozen):
    system: str
    code: str
    display: str | None = None
    source: str | None = None
    confidence: Confidence | None = None
    note: str | None = None


class Range(_Frozen):
    min: float
    max: float
    source: str | None = None
    confidence: Confidence | None = None
    note: str | None = None


class SeverityBand(_Frozen):
    label: str
    min: float
    max: float


class BandSource(_Frozen):
    source: str
    confidence: Confidence
    note: str | None = None


class Instrument(_Frozen):
    id: str
    name: str
    codes: tuple[Coding, ...] = ()
    range: Range
    remission_max: SourcedValue | None = None
    remission_max_alternatives: tuple[SourcedValue, ...] = ()
    severity_bands: tuple[SeverityBand, ...] = ()
    severity_bands_source: BandSource | None = None
    note: str | None = None


class OtherObservation(_Frozen):
    id: str
    name: str
    codes: tuple[Coding, ...] = ()
    range: Range | None = None
    note: str | None = None


class InstrumentFile(_Frozen):
    version: str
    sources: dict[str, Source] = Field(default_factory=dict)
    response_criteria: dict[str, Any] = Field(default_factory=dict)
    instruments: tuple[Instrument, ...]
    other_observations: tuple[OtherObservation, ...] = ()


class Setting(_Frozen):
    value: float
    unit: str
    confidence: Confidence
    source: str
    description: str
    range: tuple[float, float] | None = None  # plausible [lo, hi]; `cds rules lint` flags values outside it

    @property
    def needs_review(self) -> bool:
        return self.confidence != "C"


class ValueSetLists(_Frozen):
    conditions: tuple[str, ...] = ()
    procedures: tuple[str, ...] = ()


class CategoryMap(_Frozen):
    confidence: Confidence
    source: str
    map: dict[str, str]


class SiteConfigFile(_Frozen):
    version: str
    settings: dict[str, Setting]
    valuesets: ValueSetLists = ValueSetLists()
    maudsley_severity: CategoryMap | None = None
    local_instrument_codes: dict[str, tuple[Coding, ...]] = Field(default_factory=dict)
