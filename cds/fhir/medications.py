"""Recognise medications (RxNorm ingredient or product code, ATC, or name) and turn MedicationStatement,
MedicationRequest, MedicationDispense and MedicationAdministration resources into typed MedicationExposure facts.

An administration is one dose given at one time (an inpatient dose, an esketamine session, an infusion), not a
course: the administrations of one ingredient on one day become one exposure whose daily dose is their sum,
known only when every one of them gives its amount; consecutive days then join into trials as any exposures do."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from cds.facts.construct import trusted
from cds.facts.models import DataIssue, MedicationExposure, UnidentifiedMedication
from cds.fhir.dosage import DoseEstimate, ProductStrength, administered_mg, daily_dose
from cds.fhir.dose_models import new_dose_estimate
from cds.fhir.elements import (
    as_list,
    as_number,
    as_str,
    code_keys,
    codings,
    concept_texts,
    parse_date,
    period_bounds,
    resource_ref,
)
from cds.fhir.index import ResourceIndex, reference_key
from cds.fhir.memo import ConceptMemo
from cds.fhir.reader import Resource
from cds.knowledge import Knowledge
from cds.knowledge.cache import per_knowledge
from cds.knowledge.catalog import ATC_SYSTEMS, RXNORM_SYSTEMS
from cds.knowledge.models import Drug
from cds.knowledge.products import formulation_of

_TEXT_STRENGTH = re.compile(r"(\d+(?:\.\d+)?)\s*(mg|mcg)\b(?!\s*/\s*(?:ml|hr|h\b))", re.IGNORECASE)
_COUNT_UNITS = {
    "tablet",
    "tablets",
    "tab",
    "tabs",
    "{tbl}",
    "{tablet}",
    "{tablets}",
    "capsule",
    "capsules",
    "cap",
    "{capsule}",
    "{capsules}",
    "1",
    "{count}",
    "each",
    "ea",
    "patch",
}

# FHIR status values that mean the medication was not (or not really) taken.
_SKIP_STATEMENT = {"entered-in-error", "not-taken", "intended"}
_SKIP_REQUEST = {"entered-in-error", "cancelled", "draft"}
_REQUEST_INTENTS_TAKEN = {"order", "original-order", "reflex-order", "filler-order", "instance-order", None}
_OPEN_STATUSES = {"active", "on-hold"}
_DISPENSE_TAKEN = {"completed", None}
_DAY = timedelta(days=1)
# An administration that was given, at least in part ("stopped": halted before it was complete). "not-done",
# "on-hold", "entered-in-error" and "unknown" are not counted, as a dispense whose status is not "completed" is not.
_ADMINISTERED = {"completed", "in-progress", "stopped", None}
_KINDS = {
    "MedicationStatement": "statement",
    "MedicationRequest": "request",
    "MedicationDispense": "dispense",
    "MedicationAdministration": "administration",
}
_NAMING_SYSTEMS = RXNORM_SYSTEMS | ATC_SYSTEMS  # a code in these names a drug even when the catalog lacks it
_exposure = trusted(MedicationExposure)  # MedicationExposure(**fields), cheaper (cds.facts.construct)
_new_unidentified = trusted(UnidentifiedMedication)


@dataclass(frozen=True)
class Component:
    drug: Drug
    strength: ProductStrength | None
    rate_mg_per_day: float | None
    formulation: str
    salt: str | None
    how: str


@dataclass(frozen=True)
class _Given:
    """One ingredient of one MedicationAdministration: the amount given (mg, after any salt conversion; None =
    unknown) and what the exposure made of it needs from its resource."""

    ref: str
    comp: Component
    mg: float | None
    account: str
    text: str
    evidence: tuple[str, ...]
    status: str | None
    adverse: bool
    reason_text: str | None
    indication_text: str | None


class Resolved:
    """What a medication resource names. A plain class with its own __init__: in the compiled build a dataclass's
    generated __init__ runs interpreted, and a record resolves dozens of these."""

    def __init__(
        self,
        components: list[Component] | None = None,
        text: str = "",
        evidence: list[str] | None = None,
        named: bool = False,
        key: str = "",
    ) -> None:
        self.components: list[Component] = [] if components is None else components
        self.text = text
        self.evidence: list[str] = [] if evidence is None else evidence
        # Whether the record names a drug at all (a name, a display, or an RxNorm or ATC code), whether or not it
        # is one the catalog knows. A medication that names none could be an antidepressant: see
        # UnidentifiedMedication.
        self.named = named
        self.key = key


# What each distinct medication concept names: (components, text, named), a pure function of the concept and the
# catalog.
_CONCEPTS = per_knowledge(lambda _k: ConceptMemo[tuple[tuple[Component, ...], str, bool]]())


class MedicationResolver:
    def __init__(self, knowledge: Knowledge, index: ResourceIndex) -> None:
        self.catalog = knowledge.catalog
        self.index = index
        self._concepts = _CONCEPTS(knowledge)

    def from_concept(self, concept: Any) -> Resolved:
        components, text, named = self._concepts.get(concept, self._recognise)
        return Resolved(components=list(components), text=text, named=named)

    def _recognise(self, concept: Any) -> tuple[tuple[Component, ...], str, bool]:
        resolved = self._from_concept(concept)
        named = bool(resolved.components or resolved.text) or any(
            code and system.lower() in _NAMING_SYSTEMS for system, code, _ in codings(concept)
        )
        return tuple(resolved.components), resolved.text, named

    def _from_concept(self, concept: Any) -> Resolved:
        texts = concept_texts(concept)
        resolved = Resolved(text=texts[0] if texts else "")
        for system, code, display in codings(concept):
            sys_l = system.lower()
            if sys_l in RXNORM_SYSTEMS:
                product = self.catalog.product(code)
                if product is not None:
                    resolved.text = resolved.text or product.display
                    for part in product.components:
                        drug = self.catalog.get(part.ingredient)
                        if drug is None:
                            continue
                        strength = (
                            ProductStrength(mg_per_unit=part.mg_per_unit, per_ml=part.per_ml)
                            if part.mg_per_unit
                            else None
                        )
                        resolved.components.append(
                            Component(
                                drug,
                                strength,
                                part.mg_per_day_rate,
                                product.formulation,
                                part.salt,
                                f"RxNorm product {code}",
                            )
                        )
                    return resolved
                drug = self.catalog.by_rxnorm(code)
                if drug is not None:
                    resolved.components.append(
                        self._from_text_strength(drug, display or resolved.text, f"RxNorm ingredient {code}")
                    )
                    return resolved
            elif sys_l in ATC_SYSTEMS:
                drug = self.catalog.by_atc(code)
                if drug is not None:
                    resolved.components.append(self._from_text_strength(drug, display or resolved.text, f"ATC {code}"))
                    return resolved
        drugs = self.catalog.by_text(" ".join(texts))
        for drug in drugs:
            text = next((t for t in texts if drug.ingredient in t.lower()), " ".join(texts))
            comp = self._from_text_strength(drug, text if len(drugs) == 1 else "", f"name '{text}'")
            resolved.components.append(comp)
        return resolved

    def _from_text_strength(self, drug: Drug, text: str, how: str) -> Component:
        strengths = _TEXT_STRENGTH.findall(text or "")
        strength = None
        if len(strengths) == 1:
            amount = float(strengths[0][0]) / (1000.0 if strengths[0][1].lower() == "mcg" else 1.0)
            strength = ProductStrength(mg_per_unit=amount)
        salt = "hydrobromide" if "hydrobromide" in (text or "").lower() else None
        return Component(drug, strength, None, formulation_of(text or ""), salt, how)

    def from_medication_resource(self, med: Resource) -> Resolved:
        resolved = self.from_concept(med.get("code"))
        if not resolved.components:
            # A Medication may name its ingredients instead of (or besides) a code.
            for ing in as_list(med.get("ingredient")):
                if isinstance(ing, dict):
                    sub = self.from_concept(ing.get("itemCodeableConcept"))
                    for comp in sub.components:
                        resolved.components.append(_with_ratio_strength(comp, ing.get("strength")))
                    resolved.text = resolved.text or sub.text
                    resolved.named = resolved.named or sub.named
        elif len(resolved.components) == 1 and resolved.components[0].strength is None:
            for ing in as_list(med.get("ingredient")):
                if isinstance(ing, dict) and ing.get("strength"):
                    resolved.components[0] = _with_ratio_strength(resolved.components[0], ing["strength"])
                    break
        form_text = " ".join(concept_texts(med.get("form")))
        if form_text and resolved.components:
            resolved.components = [
                c if c.formulation != "immediate_release" else _replace_formulation(c, formulation_of(form_text))
                for c in resolved.components
            ]
        return resolved

    def resolve(self, resource: Resource, issues: list[DataIssue], ref: str) -> Resolved:
        """What the resource's medication[x] names. When it names no drug at all, `key` says what stands for the
        unknown drug (its codes, or the reference), so that records of one unknown drug count once."""
        if "medicationCodeableConcept" in resource:
            concept = resource["medicationCodeableConcept"]
            resolved = self.from_concept(concept)
            if not resolved.named:
                resolved.key = " ".join(sorted(code_keys(concept))) or ref  # the same codes in any order: one drug
            return resolved
        reference = resource.get("medicationReference")
        if isinstance(reference, dict):
            target = self.index.resolve(reference, resource)
            if target is not None and target.get("resourceType") == "Medication":
                resolved = self.from_medication_resource(target)
                target_ref = resource_ref(target)
                if target_ref and not str(reference.get("reference", "")).startswith("#"):
                    resolved.evidence.append(target_ref)
                if not resolved.named:
                    resolved.key = target_ref or ref
                return resolved
            issues.append(
                DataIssue(
                    kind="unresolved_reference",
                    ref=ref,
                    message=f"medication reference {reference.get('reference')!r} not found in the record",
                )
            )
            display = as_str(reference.get("display"))
            if display:
                return self.from_concept({"text": display})
            target_text = as_str(reference.get("reference"))
            # relative, absolute and versioned forms of one reference name one drug
            return Resolved(key=(reference_key(target_text) or target_text) if target_text else ref)
        return Resolved(key=ref)


def _replace_formulation(comp: Component, formulation: str) -> Component:
    return Component(comp.drug, comp.strength, comp.rate_mg_per_day, formulation, comp.salt, comp.how)


def _with_ratio_strength(comp: Component, ratio: Any) -> Component:
    if not isinstance(ratio, dict):
        return comp
    num, den = ratio.get("numerator") or {}, ratio.get("denominator") or {}
    value = as_number(num.get("value")) if isinstance(num, dict) else None
    unit = str(num.get("code") or num.get("unit") or "").lower() if isinstance(num, dict) else ""
    factor = {"mg": 1.0, "g": 1000.0, "mcg": 0.001, "ug": 0.001}.get(unit)
    if value is None or factor is None or value <= 0:
        return comp
    den_unit = str(den.get("code") or den.get("unit") or "").lower() if isinstance(den, dict) else ""
    den_value = (as_number(den.get("value")) if isinstance(den, dict) else None) or 1.0
    per_ml = den_unit in {"ml", "milliliter"}
    if not per_ml and den_unit and den_unit not in _COUNT_UNITS:
        return comp
    strength = ProductStrength(mg_per_unit=value * factor / den_value, per_ml=per_ml)
    return Component(comp.drug, strength, comp.rate_mg_per_day, comp.formulation, comp.salt, comp.how)


# ----------------------------------------------------------------------------------------- exposures


class ExposureBuilder:
    """Turns one medication resource into exposures (one per recognised ingredient)."""

    def __init__(self, knowledge: Knowledge, index: ResourceIndex, now: date) -> None:
        self.knowledge = knowledge
        self.resolver = MedicationResolver(knowledge, index)
        self.now = now
        self.factor = knowledge.config["implausible_dose_factor"]
        self.future_limit = now + timedelta(days=knowledge.config["future_tolerance_days"])
        self.unidentified: list[UnidentifiedMedication] = []
        # The dated administrations of one day, by (ingredient, formulation, day): summed by administrations().
        self._given: dict[tuple[str, str, date], list[_Given]] = {}

    def build(self, resource: Resource, ref: str, issues: list[DataIssue]) -> list[MedicationExposure]:
        rtype = resource["resourceType"]
        status = as_str(resource.get("status"))
        if rtype == "MedicationStatement" and status in _SKIP_STATEMENT:
            return []
        # A draft order (CDS Hooks draftOrders at order-select/order-sign) is a proposal: not a trial, but what
        # safety, interaction and duplicate-therapy rules must check.
        proposed = rtype == "MedicationRequest" and status == "draft"
        if (
            rtype == "MedicationRequest"
            and not proposed
            and (status in _SKIP_REQUEST or resource.get("intent") not in _REQUEST_INTENTS_TAKEN)
        ):
            return []
        if rtype == "MedicationDispense" and status not in _DISPENSE_TAKEN:
            return []
        if rtype == "MedicationAdministration" and status not in _ADMINISTERED:
            return []
        if "medicationCodeableConcept" not in resource and "medicationReference" not in resource:
            issues.append(DataIssue(kind="invalid_resource", ref=ref, message="names no medication (medication[x])"))
        resolved = self.resolver.resolve(resource, issues, ref)
        if not resolved.components:
            if not resolved.named and not proposed:
                self._unidentified(rtype, resource, status, ref, resolved.key, issues)
            return []
        adverse, reason_text, indication_text = self._reasons(resource)
        if rtype == "MedicationAdministration":
            return self._administration(resource, status, ref, issues, resolved, adverse, reason_text, indication_text)
        estimates = [self._dose(rtype, resource, comp) for comp in resolved.components]
        start: date | None
        end: date | None
        if proposed:
            start, end, end_estimated, open_ended = self.now, self.now, True, True
        else:
            start, end, end_estimated, open_ended = self._dates(
                rtype, resource, status, ref, issues, self._units_per_day(estimates[0], resolved.components[0])
            )
        out = []
        for comp, estimate in zip(resolved.components, estimates, strict=True):
            dose, derivation = self._salt_adjusted(comp, estimate.mg_per_day, estimate.derivation)
            dose, derivation = self._plausible(comp, dose, derivation, ref, issues)
            out.append(
                _exposure(
                    {
                        "ref": ref,
                        "kind": _KINDS[rtype],
                        "ingredient": comp.drug.ingredient,
                        "role": comp.drug.role,
                        "drug_class": comp.drug.drug_class,
                        "formulation": comp.formulation,
                        "medication_text": resolved.text or comp.drug.ingredient,
                        "start": start,
                        "end": end,
                        "end_is_estimate": end_estimated,
                        "open_ended": open_ended,
                        "proposed": proposed,
                        "status": status,
                        "daily_dose_mg": dose,
                        "dose_derivation": f"{derivation} [{comp.how}]",
                        "stopped_for_adverse_effect": adverse,
                        "reason_text": reason_text,
                        "indication_text": indication_text,
                        "evidence": (ref, *resolved.evidence),
                    }
                )
            )
        return out

    def _reasons(self, resource: Resource) -> tuple[bool, str | None, str | None]:
        """(stopped for an adverse effect, status reason text, indication text) of a medication resource."""
        reason_texts: list[str] = []
        adverse = False
        if "statusReason" in resource or "statusReasonCodeableConcept" in resource:  # most resources have neither
            reason_concepts = [
                *as_list(resource.get("statusReason")),
                resource.get("statusReasonCodeableConcept"),
            ]
            reason_codes = [c for cc in reason_concepts for _, c, _ in codings(cc)]
            reason_texts = [t for cc in reason_concepts for t in concept_texts(cc)]
            adverse = bool(reason_codes or reason_texts) and self.knowledge.intolerance.matches(
                reason_codes, reason_texts
            )
        indications = resource.get("reasonCode")
        indication = [t for cc in as_list(indications) for t in concept_texts(cc)] if indications else []
        return adverse, "; ".join(reason_texts) or None, "; ".join(indication) or None

    def _salt_adjusted(self, comp: Component, dose: float | None, derivation: str) -> tuple[float | None, str]:
        """A dose of a salt (e.g. desvenlafaxine succinate) as the base the dose table is written in."""
        if dose is not None and comp.salt:
            eq = next((s for s in comp.drug.salt_equivalence if s.salt == comp.salt), None)
            if eq is not None:
                salt = f"{comp.salt} salt x {eq.factor} ({eq.source}, {eq.confidence})"
                return round(dose * eq.factor, 3), f"{derivation}; {salt}"
        return dose, derivation

    def _plausible(
        self, comp: Component, dose: float | None, derivation: str, ref: str, issues: list[DataIssue]
    ) -> tuple[float | None, str]:
        """A daily dose above the configured multiple of the labelled maximum is reported and treated as unknown."""
        label_max = comp.drug.max_dose(comp.formulation)
        if dose is not None and label_max is not None and dose > label_max.value * self.factor:
            issues.append(
                DataIssue(
                    kind="implausible_dose",
                    ref=ref,
                    message=(
                        f"{comp.drug.ingredient} {_fmt(dose)} mg/day is more than {_fmt(self.factor)}x the "
                        f"labelled maximum of {_fmt(label_max.value)} mg/day; dose treated as unknown"
                    ),
                )
            )
            return None, f"implausible dose ignored ({derivation})"
        return dose, derivation

    # -- administrations --------------------------------------------------------------------------
    def _administration(
        self,
        resource: Resource,
        status: str | None,
        ref: str,
        issues: list[DataIssue],
        resolved: Resolved,
        adverse: bool,
        reason_text: str | None,
        indication_text: str | None,
    ) -> list[MedicationExposure]:
        """A dated administration within one day is kept for administrations(), which sums each day's. One over
        several days, or undated, is an exposure of its own whose daily amount is unknown (a transdermal
        system's delivery rate excepted)."""
        before = len(issues)
        start, end, _, _ = self._dates("MedicationAdministration", resource, status, ref, issues)
        if any(i.kind == "future_date" for i in issues[before:]):
            return []
        out = []
        for comp in resolved.components:
            if comp.rate_mg_per_day is not None:
                mg, account = comp.rate_mg_per_day, "transdermal system delivery rate"
            elif status == "stopped":
                mg, account = None, "stopped before it was complete: the amount given is not known"
            else:
                mg, account = administered_mg(resource.get("dosage"), comp.strength)
            mg, account = self._salt_adjusted(comp, mg, account)
            given = _Given(
                ref=ref,
                comp=comp,
                mg=mg,
                account=account,
                text=resolved.text or comp.drug.ingredient,
                evidence=(ref, *resolved.evidence),
                status=status,
                adverse=adverse,
                reason_text=reason_text,
                indication_text=indication_text,
            )
            if start is not None and end == start:
                self._given.setdefault((comp.drug.ingredient, comp.formulation, start), []).append(given)
                continue
            if comp.rate_mg_per_day is None:
                where = "undated" if start is None else f"given over {start} to {end or 'an unknown end'}"
                mg, account = None, f"{where}: the amount per day is not known"
            out.append(self._given_exposure([given], start, end, mg, account, issues))
        return out

    def administrations(self, issues: list[DataIssue]) -> list[MedicationExposure]:
        """The dated administrations read so far, as exposures: per ingredient and formulation, each day's amounts
        summed when every administration gives its amount, else unknown; consecutive days with the same daily dose
        make one exposure (a ward stay is a few exposures, not one per day, which is the same for trials and keeps
        the findings about a drug to one per run of days)."""
        out = []
        run: tuple[str, str, date, date, float | None, str, list[_Given]] | None = None
        for (ingredient, formulation, day), given in sorted(self._given.items()):
            doses = [g.mg for g in given]
            if all(d is not None for d in doses):
                total: float | None = round(sum(d for d in doses if d is not None), 3)
                account = f"{len(given)} administration(s) on {day}: " + " + ".join(g.account for g in given)
            else:
                unknown = [g for g in given if g.mg is None]
                total = None
                account = f"{len(unknown)} of {len(given)} administration(s) on {day} without the amount given: " + (
                    "; ".join(f"{g.ref}: {g.account}" for g in unknown)
                )
            if run is not None and run[:2] == (ingredient, formulation) and day == run[3] + _DAY and total == run[4]:
                run = (ingredient, formulation, run[2], day, total, run[5], run[6] + given)
                continue
            if run is not None:
                out.append(self._run_exposure(run, issues))
            run = (ingredient, formulation, day, day, total, account, list(given))
        if run is not None:
            out.append(self._run_exposure(run, issues))
        self._given.clear()
        return out

    def _run_exposure(
        self, run: tuple[str, str, date, date, float | None, str, list[_Given]], issues: list[DataIssue]
    ) -> MedicationExposure:
        _, _, first, last, total, account, given = run
        if last != first:
            account += f"; the same daily dose each day to {last}"
        return self._given_exposure(given, first, last, total, account, issues)

    def _given_exposure(
        self,
        given: list[_Given],
        start: date | None,
        end: date | None,
        dose: float | None,
        derivation: str,
        issues: list[DataIssue],
    ) -> MedicationExposure:
        first = given[0]
        comp = first.comp
        dose, derivation = self._plausible(comp, dose, derivation, first.ref, issues)
        return _exposure(
            {
                "ref": first.ref,
                "kind": "administration",
                "ingredient": comp.drug.ingredient,
                "role": comp.drug.role,
                "drug_class": comp.drug.drug_class,
                "formulation": comp.formulation,
                "medication_text": first.text,
                "start": start,
                "end": end,
                "end_is_estimate": False,
                "open_ended": False,
                "proposed": False,
                "status": first.status,
                "daily_dose_mg": dose,
                "dose_derivation": f"{derivation} [{comp.how}]",
                "stopped_for_adverse_effect": any(g.adverse for g in given),
                "reason_text": "; ".join(dict.fromkeys(g.reason_text for g in given if g.reason_text)) or None,
                "indication_text": "; ".join(dict.fromkeys(g.indication_text for g in given if g.indication_text))
                or None,
                "evidence": tuple(dict.fromkeys(ref for g in given for ref in g.evidence)),
            }
        )

    def _unidentified(
        self, rtype: str, resource: Resource, status: str | None, ref: str, key: str, issues: list[DataIssue]
    ) -> None:
        """Keep a record that names no drug, dated like a named one (one after the evaluation date is reported
        and not counted, as for a named drug)."""
        before = len(issues)
        start, end, _, _ = self._dates(rtype, resource, status, ref, issues)
        if any(i.kind == "future_date" for i in issues[before:]):
            return
        if "medicationCodeableConcept" in resource:
            reason = "its medication code names no drug (no RxNorm or ATC code, no name)"
        elif "medicationReference" in resource:
            reason = f"its medication ({key}) is not in the record or names no drug"
        else:
            reason = "it names no medication"
        self.unidentified.append(
            _new_unidentified({"ref": ref, "key": key, "start": start, "end": end, "reason": reason})
        )

    # -- dose -------------------------------------------------------------------------------------
    def _dose(self, rtype: str, resource: Resource, comp: Component) -> DoseEstimate:
        if comp.rate_mg_per_day is not None:
            rate = comp.rate_mg_per_day
            return new_dose_estimate({"mg_per_day": rate, "derivation": "transdermal system delivery rate"})
        given = resource.get("dosage" if rtype == "MedicationStatement" else "dosageInstruction")
        if isinstance(given, dict):  # one Dosage, not in a list (tolerated): as one in a list
            given = [given]
        if isinstance(given, list) and len(given) == 1 and isinstance(given[0], dict):  # the common case
            estimate = _cached_daily_dose(given[0], comp.strength)
            if estimate.mg_per_day is not None:
                return estimate
        dosages = [d for d in as_list(given) if isinstance(d, dict)] if given else []
        estimates = [_cached_daily_dose(d, comp.strength) for d in dosages]
        known = [e for e in estimates if e.mg_per_day is not None]
        if estimates and len(known) == len(estimates):
            if len(estimates) == 1:
                return estimates[0]
            sequences = {d.get("sequence") for d in dosages}
            if len(sequences) == 1:
                total = sum(e.mg_per_day or 0.0 for e in known)
                return new_dose_estimate({"mg_per_day": total, "derivation": " + ".join(e.derivation for e in known)})
            best = max(known, key=lambda e: e.mg_per_day or 0.0)
            return new_dose_estimate(
                {"mg_per_day": best.mg_per_day, "derivation": f"highest of sequenced dosages: {best.derivation}"}
            )
        if rtype == "MedicationDispense":
            supplied = self._dispensed_per_day(resource, comp)
            if supplied is not None:
                return supplied
        if estimates:
            first = next((e for e in estimates if e.mg_per_day is None), estimates[0])
            return new_dose_estimate({"mg_per_day": None, "derivation": first.derivation, "problems": first.problems})
        return new_dose_estimate({"mg_per_day": None, "derivation": "no dosage recorded"})

    def _dispensed_per_day(self, resource: Resource, comp: Component) -> DoseEstimate | None:
        quantity, days = resource.get("quantity"), resource.get("daysSupply")
        if not isinstance(quantity, dict) or not isinstance(days, dict) or comp.strength is None:
            return None
        qty, ndays = as_number(quantity.get("value")), as_number(days.get("value"))
        if not qty or not ndays or qty <= 0 or ndays <= 0:
            return None
        unit = str(quantity.get("code") or quantity.get("unit") or "").lower()
        if comp.strength.per_ml != (unit in {"ml", "milliliter"}):
            return None
        if not comp.strength.per_ml and unit and unit not in _COUNT_UNITS:
            return None
        mg = qty * comp.strength.mg_per_unit / ndays
        return new_dose_estimate(
            {
                "mg_per_day": round(mg, 3),
                "derivation": f"dispensed {_fmt(qty)} x {_fmt(comp.strength.mg_per_unit)} mg over {_fmt(ndays)} days",
            }
        )

    # -- dates ------------------------------------------------------------------------------------
    @staticmethod
    def _units_per_day(estimate: DoseEstimate, comp: Component) -> float | None:
        if estimate.mg_per_day is None or comp.strength is None or comp.strength.per_ml:
            return None
        return estimate.mg_per_day / comp.strength.mg_per_unit

    def _dates(
        self,
        rtype: str,
        resource: Resource,
        status: str | None,
        ref: str,
        issues: list[DataIssue],
        units_per_day: float | None = None,
    ) -> tuple[date | None, date | None, bool, bool]:
        """(start, end, end_is_estimate, open_ended) for one medication resource."""
        start: date | None
        end: date | None
        estimated = False
        if rtype == "MedicationStatement":
            start, end = period_bounds(resource.get("effectivePeriod"))
            if start is None and end is None:
                start = parse_date(resource.get("effectiveDateTime"))
        elif rtype == "MedicationAdministration":
            start, end = period_bounds(resource.get("effectivePeriod"))
            if start is None and end is None:
                start = end = parse_date(resource.get("effectiveDateTime"))
            elif end is None:  # an administration still running, or whose end was not recorded: its first day
                end, estimated = start, True
            elif start is None:  # only its end was recorded: the day it was given
                start = end
        elif rtype == "MedicationRequest":
            start, end = self._request_bounds(resource)
            if start is None:
                start = parse_date(resource.get("authoredOn"))
            if end is None and start is not None:
                supply = self._supply_days(resource, units_per_day)
                if supply is not None:
                    end, estimated = start + timedelta(days=supply - 1), True
        else:
            start = parse_date(resource.get("whenHandedOver")) or parse_date(resource.get("whenPrepared"))
            end = None
            days = resource.get("daysSupply")
            ndays = as_number(days.get("value")) if isinstance(days, dict) else None
            if start is not None and ndays and ndays > 0:
                end, estimated = start + timedelta(days=int(round(ndays)) - 1), True
        if start is not None and end is not None and end < start:
            issues.append(
                DataIssue(
                    kind="invalid_period",
                    ref=ref,
                    message=f"ends ({end}) before it starts ({start}); duration treated as unknown",
                )
            )
            end, estimated = None, False
        if start is not None and start > self.future_limit:
            issues.append(
                DataIssue(
                    kind="future_date",
                    ref=ref,
                    message=f"starts {start}, after the evaluation date {self.now}; not counted",
                )
            )
            return None, None, False, False
        open_ended = False
        if rtype != "MedicationDispense" and status in _OPEN_STATUSES and (end is None or end > self.now):
            end, estimated, open_ended = self.now, True, True
        elif end is not None and end > self.now:
            end, estimated = self.now, True
        return start, end, estimated, open_ended

    @staticmethod
    def _request_bounds(resource: Resource) -> tuple[date | None, date | None]:
        for dosage in as_list(resource.get("dosageInstruction")):
            if isinstance(dosage, dict) and isinstance(dosage.get("timing"), dict):
                repeat = dosage["timing"].get("repeat")
                if isinstance(repeat, dict) and isinstance(repeat.get("boundsPeriod"), dict):
                    return period_bounds(repeat["boundsPeriod"])
        return None, None

    @staticmethod
    def _supply_days(resource: Resource, units_per_day: float | None) -> int | None:
        """Days the prescribed supply lasts: expectedSupplyDuration, else quantity / units per day."""
        request = resource.get("dispenseRequest")
        if not isinstance(request, dict):
            return None
        repeats = max(as_number(request.get("numberOfRepeatsAllowed")) or 0.0, 0.0)
        duration = request.get("expectedSupplyDuration")
        if isinstance(duration, dict):
            value = as_number(duration.get("value"))
            unit = str(duration.get("code") or duration.get("unit") or "d").lower()
            per = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7, "mo": 30, "month": 30}.get(unit)
            if value is not None and value > 0 and per is not None:
                return int(round(value * per * (1 + repeats)))
        quantity = request.get("quantity")
        if isinstance(quantity, dict) and units_per_day:
            qty = as_number(quantity.get("value"))
            unit = str(quantity.get("code") or quantity.get("unit") or "").lower()
            if (
                qty
                and qty > 0
                and (
                    not unit
                    or unit in _COUNT_UNITS
                    or unit.strip("{}s") in _COUNT_UNITS
                    or unit.strip("{}") in _COUNT_UNITS
                )
            ):
                return int(round(qty / units_per_day * (1 + repeats)))
        return None


_DOSES: ConceptMemo[DoseEstimate] = ConceptMemo()


# Timing.repeat's bounds: when a regimen starts and stops, which daily_dose() never reads (tested:
# tests/fhir/test_medications.py). Orders carry their own dates there, so they are left out of the memo's key.
_BOUNDS = ("boundsPeriod", "boundsDuration", "boundsRange")


def _without_bounds(dosage: dict[str, Any]) -> dict[str, Any]:
    timing = dosage.get("timing")
    if isinstance(timing, dict):
        repeat = timing.get("repeat")
        if isinstance(repeat, dict) and any(k in repeat for k in _BOUNDS):
            kept = {k: v for k, v in repeat.items() if k not in _BOUNDS}
            return {**dosage, "timing": {**timing, "repeat": kept}}
    return dosage


def _cached_daily_dose(dosage: dict[str, Any], strength: ProductStrength | None) -> DoseEstimate:
    """daily_dose() is a pure function of the Dosage JSON (bounds aside) and the strength; records (and patients)
    repeat the same instructions, so parse each distinct one once per process."""
    regimen = _without_bounds(dosage)
    key = [regimen, None, False] if strength is None else [regimen, strength.mg_per_unit, strength.per_ml]
    return _DOSES.get(key, lambda _key: daily_dose(dosage, strength))


def _fmt(x: float) -> str:
    return f"{x:g}" if abs(x - round(x)) > 1e-9 else str(int(round(x)))
