"""Recognising medications and reading exposures from MedicationStatement, -Request, -Dispense and -Administration."""

from __future__ import annotations

import copy
from typing import Any

from cds.evaluation import Evaluator
from cds.facts.models import MedicationExposure
from tests.conftest import NOW
from tests.helpers import RXNORM, bundle, statement
from tests.mutation import WRONG, _paths


def exposures(ev: Evaluator, *resources: dict[str, Any]) -> list[MedicationExposure]:
    return list(ev.facts(bundle(*resources), NOW).record.exposures)


def med(concept: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationStatement",
        "id": "m",
        "status": "completed",
        "medicationCodeableConcept": concept,
        "effectivePeriod": {"start": "2025-01-01", "end": "2025-03-01"},
        **extra,
    }


def test_recognised_by_ingredient_product_atc_and_name(reference: Evaluator) -> None:
    by = [
        {"coding": [{"system": RXNORM, "code": "36437"}]},
        {"coding": [{"system": RXNORM, "code": "312938", "display": "sertraline 100 MG Oral Tablet"}]},
        {"coding": [{"system": "http://www.whocc.no/atc", "code": "N06AB06"}]},
        {"text": "Zoloft 50 mg tablets"},
        {"coding": [{"system": RXNORM, "code": "328670", "display": "Sertraline 100MG"}]},  # SCDC, not in tables
    ]
    for concept in by:
        assert [e.ingredient for e in exposures(reference, med(concept))] == ["sertraline"], concept


def test_unknown_codes_and_other_drugs_are_ignored(reference: Evaluator) -> None:
    assert exposures(reference, med({"coding": [{"system": "urn:local", "code": "X1"}]})) == []
    assert exposures(reference, med({"coding": [{"system": RXNORM, "code": "29046", "display": "lisinopril"}]})) == []


def test_product_strength_times_tablets(reference: Evaluator) -> None:
    res = med({"coding": [{"system": RXNORM, "code": "312938"}]}, dosage=[{"text": "take 2 tablets by mouth daily"}])
    assert exposures(reference, res)[0].daily_dose_mg == 200


def test_combination_product_gives_one_exposure_per_ingredient(reference: Evaluator) -> None:
    ingredients = {e.ingredient for e in exposures(reference, med({"text": "olanzapine and fluoxetine capsule"}))}
    assert ingredients == {"olanzapine", "fluoxetine"}


def test_contained_medication_reference(reference: Evaluator) -> None:
    res = {
        "resourceType": "MedicationStatement",
        "id": "m",
        "status": "active",
        "contained": [
            {"resourceType": "Medication", "id": "med1", "code": {"coding": [{"system": RXNORM, "code": "321988"}]}}
        ],
        "medicationReference": {"reference": "#med1"},
        "effectivePeriod": {"start": "2025-12-01"},
    }
    [e] = exposures(reference, res)
    assert e.ingredient == "escitalopram" and e.open_ended and e.end == NOW


def dispense(days_supply: object) -> dict[str, Any]:
    """45 sertraline 50 mg tablets handed over on 2025-01-01."""
    return {
        "resourceType": "MedicationDispense",
        "id": "d",
        "status": "completed",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "312938"}]},
        "quantity": {"value": 45, "unit": "tablet"},
        "daysSupply": {"value": days_supply},
        "whenHandedOver": "2025-01-01",
    }


def test_dispense_dose_from_quantity_and_days_supply(reference: Evaluator) -> None:
    [e] = exposures(reference, dispense(30))
    assert e.daily_dose_mg == 150 and e.end is not None and e.end.isoformat() == "2025-01-30"


def test_implausible_dose_is_unknown_and_reported(reference: Evaluator) -> None:
    f = reference.facts(bundle(statement("s", "36437", "2025-01-01", "2025-03-01", mg=5000)), NOW)
    assert f.record.exposures[0].daily_dose_mg is None
    assert [i.kind for i in f.record.issues] == ["implausible_dose"]


def test_future_start_and_inverted_period(reference: Evaluator) -> None:
    f = reference.facts(
        bundle(
            statement("f", "36437", "2026-06-01", "2026-08-01", mg=100),
            statement("i", "36437", "2025-05-01", "2025-01-01", mg=100),
        ),
        NOW,
    )
    assert sorted(i.kind for i in f.record.issues) == ["future_date", "invalid_period"]


def test_entered_in_error_and_not_taken_are_skipped(reference: Evaluator) -> None:
    for status in ("entered-in-error", "not-taken"):
        assert exposures(reference, statement("s", "36437", "2025-01-01", "2025-03-01", mg=100, status=status)) == []


def test_unresolved_medication_reference_is_reported(reference: Evaluator) -> None:
    res = {
        "resourceType": "MedicationRequest",
        "id": "r",
        "status": "active",
        "intent": "order",
        "medicationReference": {"reference": "Medication/missing"},
        "authoredOn": "2025-01-01",
    }
    f = reference.facts(bundle(res), NOW)
    assert [i.kind for i in f.record.issues] == ["unresolved_reference"]


def test_future_condition_onset_is_reported_and_not_used_as_episode_start(reference: Evaluator) -> None:
    from tests.helpers import mdd

    f = reference.facts(bundle(mdd("c1", "2024-01-01"), mdd("c2", "2027-01-05")), NOW)
    assert f.episode.start is not None and f.episode.start.isoformat() == "2024-01-01"
    assert [(i.kind, i.ref) for i in f.record.issues] == [("future_date", "Condition/c2")]


def unidentified(ev: Evaluator, *resources: dict[str, Any]) -> list[tuple[str, str]]:
    return [(u.ref, u.key) for u in ev.facts(bundle(*resources), NOW).record.unidentified]


def test_a_record_that_names_no_drug_is_kept_as_unidentified(reference: Evaluator) -> None:
    local = med({"coding": [{"system": "urn:local", "code": "X1"}]})
    assert unidentified(reference, local) == [("MedicationStatement/m", "urn:local|X1")]
    missing = {**med({}), "medicationReference": {"reference": "Medication/gone"}}
    del missing["medicationCodeableConcept"]
    assert unidentified(reference, missing) == [("MedicationStatement/m", "Medication/gone")]
    absolute = {**missing, "medicationReference": {"reference": "https://ehr.example/fhir/Medication/gone/_history/2"}}
    assert unidentified(reference, absolute) == [("MedicationStatement/m", "Medication/gone")]  # one drug, any form
    two_codes = [{"system": "urn:local", "code": "X1"}, {"system": "urn:other", "code": "Y"}]
    keys = {unidentified(reference, med({"coding": c}))[0][1] for c in (two_codes, two_codes[::-1])}
    assert keys == {"urn:local|X1 urn:other|Y"}
    codeless = {"resourceType": "Medication", "id": "blank", "form": {"text": "tablet"}}
    to_codeless = {**missing, "medicationReference": {"reference": "Medication/blank"}}
    assert unidentified(reference, codeless, to_codeless) == [("MedicationStatement/m", "Medication/blank")]


def test_a_named_drug_is_not_unidentified_even_when_unknown(reference: Evaluator) -> None:
    named = [
        {"coding": [{"system": RXNORM, "code": "29046"}]},  # an RxNorm code names a drug (lisinopril)
        {"coding": [{"system": "http://www.whocc.no/atc", "code": "C09AA03"}]},
        {"coding": [{"system": "urn:local", "code": "X1", "display": "lisinopril 10 mg"}]},
        {"text": "omeprazole"},
    ]
    for concept in named:
        assert unidentified(reference, med(concept)) == [], concept
    by_display = {**med({}), "medicationReference": {"reference": "Medication/gone", "display": "omeprazole"}}
    del by_display["medicationCodeableConcept"]
    assert unidentified(reference, by_display) == []


def test_unidentified_records_follow_the_rules_for_taken_and_dated(reference: Evaluator) -> None:
    local = {"coding": [{"system": "urn:local", "code": "X1"}]}
    not_taken = med(local, status="entered-in-error")
    draft = {
        "resourceType": "MedicationRequest",
        "id": "d",
        "status": "draft",  # a proposal (CDS Hooks draftOrders), not a trial
        "intent": "order",
        "medicationCodeableConcept": local,
        "authoredOn": "2025-06-01",
    }
    future = med(local, effectivePeriod={"start": "2027-01-01"})
    assert unidentified(reference, not_taken, draft, future) == []
    facts = reference.facts(bundle(future), NOW)
    assert [i.kind for i in facts.issues] == ["future_date"]


def test_a_medication_resource_without_medication_is_reported(reference: Evaluator) -> None:
    bare = med({})
    del bare["medicationCodeableConcept"]
    facts = reference.facts(bundle(bare), NOW)
    assert [(i.kind, i.message) for i in facts.issues] == [("invalid_resource", "names no medication (medication[x])")]
    assert [u.key for u in facts.record.unidentified] == ["MedicationStatement/m"]


def test_a_days_supply_too_large_for_a_date_is_an_invalid_resource(reference: Evaluator) -> None:
    """Found by the mutation test (tests/mutation.py): the end date overflowed and the whole evaluation failed."""
    f = reference.facts(bundle(dispense(10**30), statement("s", "36437", "2025-01-01", "2025-03-01", mg=100)), NOW)
    assert [e.ingredient for e in f.record.exposures] == ["sertraline"]  # the rest of the record is read
    [issue] = f.record.issues
    assert issue.kind == "invalid_resource" and issue.ref == "MedicationDispense/d"


def administration(
    rid: str, when: object, mg: float | None = None, *, code: str = "36437", **extra: Any
) -> dict[str, Any]:
    """A MedicationAdministration; `when` is an effectiveDateTime, or a dict for an effectivePeriod."""
    res: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": rid,
        "status": "completed",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code}]},
        "subject": {"reference": "Patient/p1"},
        **({"effectivePeriod": when} if isinstance(when, dict) else {"effectiveDateTime": when}),
    }
    if mg is not None:
        res["dosage"] = {"dose": {"value": mg, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}
    return res | extra


def test_a_days_administrations_are_one_exposure_with_their_sum(reference: Evaluator) -> None:
    found = exposures(
        reference,
        administration("a1", "2025-03-01T08:00:00Z", 50),
        administration("a2", "2025-03-01T20:00:00+01:00", 50),
        administration("a3", "2025-03-02T08:00:00Z", 50),
    )
    assert [(e.kind, e.start.isoformat() if e.start else None, e.daily_dose_mg) for e in found] == [
        ("administration", "2025-03-01", 100.0),
        ("administration", "2025-03-02", 50.0),
    ]
    first = found[0]
    assert first.end == first.start and not first.end_is_estimate and not first.open_ended
    assert first.evidence == ("MedicationAdministration/a1", "MedicationAdministration/a2")
    assert "2 administration(s) on 2025-03-01" in first.dose_derivation


def test_consecutive_days_with_the_same_daily_dose_are_one_exposure(reference: Evaluator) -> None:
    given = [
        administration(f"a{d}{h}", f"2025-03-{d:02d}T{h}:00:00Z", 50) for d in (1, 2, 3, 5, 6) for h in (8, 20)
    ] + [administration("b", "2025-03-07T08:00:00Z", 75), administration("c", "2025-03-07T20:00:00Z", 75)]
    found = exposures(reference, *given)
    spans = [(str(e.start), str(e.end), e.daily_dose_mg) for e in found]
    # a day without administrations, or another daily dose, starts a new exposure
    assert spans == [
        ("2025-03-01", "2025-03-03", 100.0),
        ("2025-03-05", "2025-03-06", 100.0),
        ("2025-03-07", "2025-03-07", 150.0),
    ]
    assert len(found[0].evidence) == 6 and "the same daily dose each day to 2025-03-03" in found[0].dose_derivation


def test_one_administration_without_its_amount_makes_the_day_unknown(reference: Evaluator) -> None:
    [e] = exposures(
        reference, administration("a1", "2025-03-01T08:00:00Z", 50), administration("a2", "2025-03-01T20:00:00Z")
    )
    assert e.daily_dose_mg is None
    assert "1 of 2 administration(s)" in e.dose_derivation and "MedicationAdministration/a2" in e.dose_derivation


def test_administrations_not_given_are_not_exposures(reference: Evaluator) -> None:
    for status in ("not-done", "on-hold", "entered-in-error", "unknown"):
        assert exposures(reference, administration("a", "2025-03-01", 50, status=status)) == [], status


def test_a_stopped_administration_was_given_in_an_unknown_amount(reference: Evaluator) -> None:
    [e] = exposures(reference, administration("a", "2025-03-01", 50, status="stopped"))
    assert e.daily_dose_mg is None and "stopped before it was complete" in e.dose_derivation


def test_an_administration_over_several_days_has_no_daily_amount(reference: Evaluator) -> None:
    period = {"start": "2025-03-01T08:00:00Z", "end": "2025-03-03T08:00:00Z"}
    [e] = exposures(reference, administration("a", period, 300))
    assert (e.start.isoformat() if e.start else None, e.end.isoformat() if e.end else None) == (
        "2025-03-01",
        "2025-03-03",
    )
    assert e.daily_dose_mg is None and "amount per day is not known" in e.dose_derivation


def test_an_administration_with_only_an_end_was_given_that_day(reference: Evaluator) -> None:
    [e] = exposures(reference, administration("a", {"end": "2025-03-01T09:00:00Z"}, 50))
    assert (e.start, e.end, e.daily_dose_mg) == (e.end, e.start, 50.0) and e.start is not None
    assert e.start.isoformat() == "2025-03-01"


def test_an_infusion_rate_without_the_amount_is_unknown(reference: Evaluator) -> None:
    rate = {"dosage": {"rateQuantity": {"value": 20, "unit": "mg/h", "system": "http://unitsofmeasure.org"}}}
    [e] = exposures(reference, administration("a", "2025-03-01", **rate))
    assert e.daily_dose_mg is None and "infusion rate without the amount given" in e.dose_derivation


def test_administered_tablets_use_the_product_strength(reference: Evaluator) -> None:
    res = administration("a", "2025-03-01", code="312938")  # sertraline 100 MG Oral Tablet
    res["dosage"] = {"dose": {"value": 1.5, "unit": "tablet"}}
    [e] = exposures(reference, res)
    assert e.daily_dose_mg == 150


def test_a_future_administration_is_reported_and_not_counted(reference: Evaluator) -> None:
    f = reference.facts(bundle(administration("a", "2026-06-01", 50)), NOW)
    assert f.record.exposures == () and [i.kind for i in f.record.issues] == ["future_date"]


def test_an_implausible_daily_sum_is_unknown_and_reported(reference: Evaluator) -> None:
    given = [administration(f"a{i}", f"2025-03-01T{8 + i:02d}:00:00Z", 400) for i in range(6)]
    f = reference.facts(bundle(*given), NOW)
    [e] = f.record.exposures
    assert e.daily_dose_mg is None and [i.kind for i in f.record.issues] == ["implausible_dose"]


def test_an_undated_administration_is_an_undated_exposure(reference: Evaluator) -> None:
    res = administration("a", "2025-03-01", 50)
    del res["effectiveDateTime"]
    [e] = exposures(reference, res)
    assert e.start is None and e.daily_dose_mg is None and "undated" in e.dose_derivation


def test_an_administration_that_names_no_drug_is_unidentified(reference: Evaluator) -> None:
    res = administration("a", "2025-03-01", 50)
    res["medicationCodeableConcept"] = {"coding": [{"system": "urn:local", "code": "X1"}]}
    assert unidentified(reference, res) == [("MedicationAdministration/a", "urn:local|X1")]


def test_an_administration_with_any_value_of_the_wrong_type_never_fails_the_evaluation(reference: Evaluator) -> None:
    """Every value of a full administration replaced, one at a time, by each kind of wrong value: the record is
    still read (the bad resource at worst reported), never an exception."""
    full = administration("a", {"start": "2025-03-01T08:00:00Z", "end": "2025-03-01T09:00:00Z"}, 50)
    full |= {"statusReason": [{"text": "x"}], "reasonCode": [{"text": "depression"}], "request": {"reference": "r"}}
    full["dosage"] |= {"route": {"text": "oral"}, "rateQuantity": {"value": 5, "unit": "mg/h"}}
    paths: list[tuple[Any, ...]] = []
    _paths(full, (), paths)
    for path in [p for p in paths if p and p[0] != "resourceType"]:
        for wrong in WRONG:
            res = copy.deepcopy(full)
            node = res
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = copy.deepcopy(wrong)
            reference.facts(bundle(res), NOW)  # raises on failure


def test_the_daily_dose_does_not_depend_on_the_regimens_bounds() -> None:
    """What lets the dose memo leave Timing.repeat.bounds* out of its key (cds.fhir.medications._without_bounds):
    for every Dosage of a generated population, with and without its bounds, the same estimate."""
    from cds.fhir.dosage import ProductStrength, daily_dose
    from cds.fhir.medications import _without_bounds
    from cds.synthetic import generate_population

    bounded = 0
    for patient in generate_population(60, seed=5):
        for entry in patient["entry"]:
            res = entry["resource"]
            for dosage in res.get("dosageInstruction", []) + res.get("dosage", []):
                if not isinstance(dosage, dict):
                    continue
                bare = _without_bounds(dosage)
                bounded += bare is not dosage
                for strength in (None, ProductStrength(mg_per_unit=50.0, per_ml=False)):
                    assert daily_dose(bare, strength) == daily_dose(dosage, strength)
    assert bounded > 50
