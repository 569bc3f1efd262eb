"""The values the dose parser (cds/fhir/dosage.py) takes and returns. They live apart from the parser because the
parser is compiled (setup.py) and mypyc cannot compile pydantic models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from cds.facts.construct import trusted


class ProductStrength(BaseModel):
    """What one unit of the product holds, from the RxNorm product table or Medication.ingredient."""

    model_config = ConfigDict(frozen=True)
    mg_per_unit: float  # mg per tablet/capsule/patch, or per mL when per_ml is True
    per_ml: bool = False  # True for solutions (strength is mg/mL)


class DoseEstimate(BaseModel):
    model_config = ConfigDict(frozen=True)
    mg_per_day: float | None  # None = unknown. NEVER 0 for "unknown".
    derivation: str  # short human-readable account of the path that produced the number
    as_needed: bool = False  # PRN dosing: mg_per_day stays None
    problems: tuple[str, ...] = ()


new_dose_estimate = trusted(DoseEstimate)  # DoseEstimate(**fields), cheaper (cds.facts.construct)
