"""Map one patient's raw FHIR resources to a typed PatientRecord. The only place that reads FHIR JSON
for Observation, Condition, AllergyIntolerance and Patient; medications are in medications.py."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from operator import attrgetter
from typing import Any

from cds.facts.construct import trusted
from cds.facts.models import (
    AdherenceEvidence,
    AdverseReaction,
    DataIssue,
    Diagnosis,
    LabResult,
    MedicationExposure,
    PatientRecord,
    ProcedureRecord,
    Score,
)
from cds.fhir.elements import (
    Coding,
    as_list,
    as_number,
    as_str,
    code_keys,
    codings,
    concept_texts,
    effective_date,
    parse_date,
    period_bounds,
)
from cds.fhir.index import ResourceIndex
from cds.fhir.medications import ExposureBuilder, MedicationResolver
from cds.fhir.memo import ConceptMemo
from cds.fhir.reader import RawInput, Resource
from cds.knowledge import Knowledge
from cds.knowledge.cache import per_knowledge
from cds.knowledge.models import Instrument, OtherObservation
from cds.knowledge.observations import Analyte

_MEDICATION_TYPES = {"MedicationStatement", "MedicationRequest", "MedicationDispense", "MedicationAdministration"}
_OBSERVATION_OK = {"final", "amended", "corrected", None}
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*$")
_INACTIVE_CONDITION = {"inactive", "remission", "resolved"}
_ABATEMENT = tuple(f"abatement{x}" for x in ("DateTime", "Period", "Age", "String", "Range", "Boolean"))
_DISCARD_VERIFICATION = {"entered-in-error", "refuted"}
_PROCEDURE_DONE = {"completed", "in-progress", None}
# Constructors for values typed code made (cds.facts.construct): a record makes hundreds of these facts.
_score, _lab, _diagnosis = trusted(Score), trusted(LabResult), trusted(Diagnosis)
_procedure, _adherence, _reaction = trusted(ProcedureRecord), trusted(AdherenceEvidence), trusted(AdverseReaction)
_record = trusted(PatientRecord)
_BY_DATE_REF, _BY_START_REF = attrgetter("date", "ref"), attrgetter("start", "ref")
_BY_DATE_REF_ANALYTE = attrgetter("date", "ref", "analyte")
# The resource types the reader reads; every other type is skipped here, and left out of a bulk export's buckets
# (cds.fhir.bulk). A Medication is reached through its reference.
READ_TYPES = frozenset({"Patient", *_MEDICATION_TYPES, "Observation", "Condition", "AllergyIntolerance", "Procedure"})


@dataclass(frozen=True)
class _ObservationCode:
    """What one Observation.code (or component code) names in the instrument and observation catalogs."""

    scored: str | None  # the first coding naming an instrument or other scored questionnaire (Observation.code)
    instrument: str | None  # the first coding naming an instrument (how a component is read)
    analytes: tuple[Analyte, ...]
    pregnancy: bool


@dataclass(frozen=True)
class _Coded:
    """One Condition or Procedure code: its system|code keys, texts, and every value set holding any of them."""

    keys: tuple[str, ...]
    texts: tuple[str, ...]
    valuesets: frozenset[str]
    is_depression: bool
    _categories: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)

    def categories(self, candidates: tuple[str, ...]) -> tuple[str, ...]:
        """The candidate value sets holding the code, in the candidates' order (the configured list)."""
        if not self.valuesets:
            return ()
        found = self._categories.get(candidates)
        if found is None:
            found = self._categories[candidates] = tuple(vid for vid in candidates if vid in self.valuesets)
        return found


_Parts = list[tuple[dict[str, Any], _ObservationCode]]  # an Observation's components, each with what its code names
_OBSERVATION_CODES = per_knowledge(lambda _k: ConceptMemo[_ObservationCode]())
_CODED = per_knowledge(lambda _k: ConceptMemo[_Coded]())


class RecordReader:
    def __init__(self, knowledge: Knowledge, now: date) -> None:
        self.knowledge = knowledge
        self.now = now
        self.future_limit = now + timedelta(days=knowledge.config["future_tolerance_days"])
        self._observation_codes = _OBSERVATION_CODES(knowledge)
        self._coded = _CODED(knowledge)

    def read(self, raw: RawInput) -> PatientRecord:
        index = ResourceIndex(raw)
        issues = list(raw.issues)
        exposures: list[MedicationExposure] = []
        scores: list[Score] = []
        diagnoses: list[Diagnosis] = []
        reactions: list[AdverseReaction] = []
        procedures: list[ProcedureRecord] = []
        labs: list[LabResult] = []
        nonadherence: list[AdherenceEvidence] = []
        patient_ref: str | None = None
        birth: date | None = None
        meds = ExposureBuilder(self.knowledge, index, self.now)
        resolver = meds.resolver
        for i, res in enumerate(raw.resources):
            rtype = res["resourceType"]
            if rtype not in READ_TYPES:
                continue  # nothing reads it (a Medication is reached through its reference)
            rid = res.get("id")
            ref = f"{rtype}/{rid}" if isinstance(rid, str) and rid else f"{rtype}[{i}]"  # = resource_ref(res) or ...
            try:
                if rtype == "Patient" and patient_ref is None:
                    patient_ref, birth = ref, parse_date(res.get("birthDate"))
                elif rtype in _MEDICATION_TYPES:
                    if rtype == "MedicationStatement" and res.get("status") == "not-taken":
                        nonadherence += self._not_taken(res, ref, resolver, issues)
                    exposures += meds.build(res, ref, issues)
                elif rtype == "Observation":
                    if res.get("status") in _OBSERVATION_OK:
                        top = self._observation_code(res.get("code"))
                        components = res.get("component")
                        parts = (
                            [
                                (comp, self._observation_code(comp.get("code")))
                                for comp in as_list(components)
                                if isinstance(comp, dict)
                            ]
                            if components
                            else []
                        )
                        if top.scored is not None or parts:
                            scores += self._scores(res, ref, issues, top, parts)
                        if top.analytes or top.pregnancy or parts:
                            labs += self._labs(res, ref, issues, top, parts)
                elif rtype == "Condition":
                    dx = self._diagnosis(res, ref, issues)
                    if dx is not None:
                        diagnoses.append(dx)
                elif rtype == "AllergyIntolerance":
                    reactions += self._reactions(res, ref, resolver)
                elif rtype == "Procedure":
                    proc = self._procedure(res, ref, issues)
                    if proc is not None:
                        procedures.append(proc)
            except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
                # A resource whose shape defeats the tolerant readers: report it, keep the rest.
                issues.append(DataIssue(kind="invalid_resource", ref=ref, message=f"could not be read ({exc})"))
        exposures += meds.administrations(issues)  # each day's administrations, once all resources are read
        return _record(
            {
                "patient_ref": patient_ref,
                "birth_date": birth,
                "exposures": tuple(exposures),
                "scores": tuple(sorted(scores, key=_BY_DATE_REF)),
                "diagnoses": tuple(diagnoses),
                "reactions": tuple(reactions),
                "procedures": tuple(sorted(procedures, key=_BY_START_REF)),
                "labs": tuple(sorted(labs, key=_BY_DATE_REF_ANALYTE)),
                "nonadherence": tuple(nonadherence),
                "unidentified": tuple(meds.unidentified),
                "issues": tuple(issues),
                "resource_count": len(raw.resources),
            }
        )

    def _usable_date(self, when: date | None, what: str, ref: str, issues: list[DataIssue]) -> date | None:
        """The date of a dated fact, or None (reported) when it has none or lies after the evaluation date."""
        if when is None:
            issues.append(DataIssue(kind="invalid_resource", ref=ref, message=f"{what} has no date; not used"))
            return None
        if when > self.future_limit:
            issues.append(
                DataIssue(
                    kind="future_date",
                    ref=ref,
                    message=f"{what} dated {when}, after the evaluation date {self.now}; not used",
                )
            )
            return None
        return when

    # -- observations -------------------------------------------------------------------------------
    def _scores(
        self, res: Resource, ref: str, issues: list[DataIssue], top: _ObservationCode, parts: _Parts
    ) -> list[Score]:
        """Scores of an Observation whose status is usable, from its code and its components' codes."""
        found: list[tuple[str, Any]] = [] if top.scored is None else [(top.scored, res)]
        if parts:
            found += [(code.instrument, comp) for comp, code in parts if code.instrument is not None]
        if not found:
            return []
        when = self._usable_date(effective_date(res), "score", ref, issues)
        if when is None:
            return []
        out = []
        for instrument_id, holder in found:
            value = _score_value(holder)
            instruments = self.knowledge.instruments
            scored: Instrument | OtherObservation = (
                instruments.instruments.get(instrument_id) or instruments.others[instrument_id]
            )
            if value is None:
                issues.append(
                    DataIssue(
                        kind="invalid_resource",
                        ref=ref,
                        message=f"{scored.name} value is missing or not a number; not used",
                    )
                )
                continue
            if scored.range is not None and not scored.range.min <= value <= scored.range.max:
                issues.append(
                    DataIssue(
                        kind="score_out_of_range",
                        ref=ref,
                        message=(
                            f"{scored.name} score {value:g} is outside "
                            f"{scored.range.min:g}-{scored.range.max:g}; not used"
                        ),
                    )
                )
                continue
            out.append(_score({"ref": ref, "instrument": instrument_id, "value": value, "date": when}))
        return out

    # -- labs and vital signs -----------------------------------------------------------------------
    def _labs(
        self, res: Resource, ref: str, issues: list[DataIssue], top: _ObservationCode, parts: _Parts
    ) -> list[LabResult]:
        """Labs and vital signs of an Observation whose status is usable."""
        holders: list[tuple[Analyte, dict[str, Any]]] = [(analyte, res) for analyte in top.analytes]
        if parts:
            holders += [(analyte, comp) for comp, code in parts for analyte in code.analytes]
        pregnancy = top.pregnancy
        if not holders and not pregnancy:
            return []
        catalog = self.knowledge.observations
        when = self._usable_date(effective_date(res), "lab or vital sign", ref, issues)
        if when is None:
            return []
        out: list[LabResult] = []
        if pregnancy:
            answer = " ".join(
                [c for _, c, _ in codings(res.get("valueCodeableConcept"))]
                + concept_texts(res.get("valueCodeableConcept"))
                + [str(res.get("valueString") or "")]
            ).lower()
            if answer.strip():
                positive = any(a in answer.split() or a == answer.strip() for a in catalog.positive_answers)
                out.append(
                    _lab({"ref": ref, "analyte": "pregnancy_test", "value": 1.0 if positive else 0.0, "date": when})
                )
        for analyte, holder in holders:
            value = _quantity_in(analyte, holder.get("valueQuantity"))
            if value is None:
                issues.append(
                    DataIssue(
                        kind="invalid_resource",
                        ref=ref,
                        message=f"{analyte.name} has no value in a known unit; not used",
                    )
                )
                continue
            low = high = None
            range_source = None
            for rr in as_list(holder.get("referenceRange")):
                if isinstance(rr, dict):
                    low, high = _quantity_in(analyte, rr.get("low")), _quantity_in(analyte, rr.get("high"))
                    range_source = "record" if low is not None or high is not None else None
                    break
            if range_source is None and analyte.default_range is not None:
                low, high, range_source = analyte.default_range.low, analyte.default_range.high, "catalog"
            interpretation = holder.get("interpretation")
            flags = [c for cc in as_list(interpretation) for _, c, _ in codings(cc)] if interpretation else []
            out.append(
                _lab(
                    {
                        "ref": ref,
                        "analyte": analyte.id,
                        "value": round(value, 4),
                        "date": when,
                        "low": low,
                        "high": high,
                        "range_source": range_source,
                        "interpretation": next((_INTERPRETATION[f] for f in flags if f in _INTERPRETATION), None),
                    }
                )
            )
        return out

    def _observation_code(self, concept: Any) -> _ObservationCode:
        return self._observation_codes.get(concept, self._recognise_observation)

    def _recognise_observation(self, concept: Any) -> _ObservationCode:
        instruments, catalog = self.knowledge.instruments, self.knowledge.observations
        found = codings(concept)
        scored: str | None = None
        for system, code, _ in found:
            match: Instrument | OtherObservation | None = instruments.match(system, code)
            if match is None:
                match = instruments.match_other(system, code)
            if match is not None:
                scored = match.id
                break
        return _ObservationCode(
            scored=scored,
            instrument=next((i.id for i in (instruments.match(s, c) for s, c, _ in found) if i is not None), None),
            analytes=tuple(a for system, code, _ in found if (a := catalog.match(system, code)) is not None),
            pregnancy=any(code in catalog.pregnancy_codes for _, code, _ in found),
        )

    def _not_taken(
        self, res: Resource, ref: str, resolver: MedicationResolver, issues: list[DataIssue]
    ) -> list[AdherenceEvidence]:
        resolved = resolver.resolve(res, issues, ref)
        when = (
            period_bounds(res.get("effectivePeriod"))[0]
            or parse_date(res.get("effectiveDateTime"))
            or parse_date(res.get("dateAsserted"))
        )
        reasons = [t for cc in as_list(res.get("statusReason")) for t in concept_texts(cc)]
        return [
            _adherence(
                {"ref": ref, "ingredient": c.drug.ingredient, "date": when, "reason": "; ".join(reasons) or None}
            )
            for c in resolved.components
            if c.drug.role == "antidepressant"
        ]

    # -- conditions ---------------------------------------------------------------------------------
    def _diagnosis(self, res: Resource, ref: str, issues: list[DataIssue]) -> Diagnosis | None:
        if _has_code(codings(res.get("verificationStatus")), _DISCARD_VERIFICATION):
            return None
        clinical = codings(res.get("clinicalStatus"))
        # without a clinical status, an abatement says it is over
        active = not _has_code(clinical, _INACTIVE_CONDITION) if clinical else not any(res.get(k) for k in _ABATEMENT)
        onset = parse_date(res.get("onsetDateTime")) or period_bounds(res.get("onsetPeriod"))[0]
        if onset is not None and onset > self.future_limit:
            issues.append(
                DataIssue(
                    kind="future_date",
                    ref=ref,
                    message=(f"onset {onset} is after the evaluation date {self.now}; onset treated as unknown"),
                )
            )
            onset = None
        coded = self._code(res.get("code"))
        return _diagnosis(
            {
                "ref": ref,
                "codes": coded.keys,
                "text": coded.texts[0] if coded.texts else "",
                "onset": onset,
                "recorded": parse_date(res.get("recordedDate")),
                "active": active,
                "is_depression": coded.is_depression,
                "categories": coded.categories(self.knowledge.config.valuesets.conditions),
            }
        )

    def _code(self, concept: Any) -> _Coded:
        return self._coded.get(concept, self._recognise_code)

    def _recognise_code(self, concept: Any) -> _Coded:
        valuesets = self.knowledge.valuesets
        keys = code_keys(concept)
        return _Coded(
            keys=tuple(keys),
            texts=tuple(concept_texts(concept)),
            valuesets=frozenset(valuesets.matching(keys, valuesets.members)),
            is_depression=valuesets.contains_any("depression-conditions", keys),
        )

    # -- procedures ---------------------------------------------------------------------------------
    def _procedure(self, res: Resource, ref: str, issues: list[DataIssue]) -> ProcedureRecord | None:
        if res.get("status") not in _PROCEDURE_DONE:
            return None
        coded = self._code(res.get("code"))
        categories = coded.categories(self.knowledge.config.valuesets.procedures)
        if not categories:
            return None
        start, end = period_bounds(res.get("performedPeriod"))
        start = self._usable_date(start or parse_date(res.get("performedDateTime")) or end, "procedure", ref, issues)
        if start is None:
            return None
        texts = [*coded.texts] + [t for bs in as_list(res.get("bodySite")) for t in concept_texts(bs)]
        joined = " ".join(texts).lower()
        bilateral = True if "bilateral" in joined else (False if "unilateral" in joined else None)
        return _procedure(
            {
                "ref": ref,
                "categories": categories,
                "text": (texts or [""])[0],
                "start": start,
                "end": end if end and end >= start else start,
                "bilateral": bilateral,
            }
        )

    # -- allergies ----------------------------------------------------------------------------------
    def _reactions(self, res: Resource, ref: str, resolver: MedicationResolver) -> list[AdverseReaction]:
        verification = [c for _, c, _ in codings(res.get("verificationStatus"))]
        clinical = [c for _, c, _ in codings(res.get("clinicalStatus"))]
        if any(v in _DISCARD_VERIFICATION for v in verification) or any(
            c in ("inactive", "resolved") for c in clinical
        ):
            return []
        resolved = resolver.from_concept(res.get("code"))
        category = as_str(res.get("type")) or "unknown"
        onset = parse_date(res.get("onsetDateTime")) or parse_date(res.get("recordedDate"))
        return [
            _reaction({"ref": ref, "ingredient": c.drug.ingredient, "category": category, "onset": onset})
            for c in resolved.components
        ]


_INTERPRETATION = {"H": "H", "HH": "H", "HU": "H", "L": "L", "LL": "L", "LU": "L", "N": "N", "A": "A", "AA": "A"}


def _has_code(found: tuple[Coding, ...], codes: set[str]) -> bool:
    """Whether any of the codings has one of the codes. A loop, not any(): no generator object is made on this
    path, which runs twice for every Condition."""
    for _, code, _ in found:  # noqa: SIM110
        if code in codes:
            return True
    return False


def _quantity_in(analyte: Analyte, quantity: Any) -> float | None:
    """A Quantity in the analyte's canonical unit; None when the unit is not one we can convert."""
    if not isinstance(quantity, dict):
        return None
    value = as_number(quantity.get("value"))
    if value is None:
        return None
    unit = quantity.get("code") or quantity.get("unit")
    if unit is None or unit == analyte.unit:
        return value
    factor = analyte.units.get(str(unit))
    return value * factor if factor is not None else None


def _score_value(holder: Any) -> float | None:
    if not isinstance(holder, dict):
        return None
    for key in ("valueInteger", "valueDecimal"):
        v = as_number(holder.get(key))
        if v is not None:
            return v
    q = holder.get("valueQuantity")
    if isinstance(q, dict):
        return as_number(q.get("value"))
    s = holder.get("valueString")
    if isinstance(s, str):
        m = _NUMBER.match(s)
        return float(m.group(1)) if m else None
    return None
