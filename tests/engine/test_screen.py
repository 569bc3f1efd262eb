"""Confounders and safety screening: in and out cases for every rule family, including the ones the issue
names (resolved hypothyroidism, normal TSH, entered-in-error, MAOI washout, esketamine without BP)."""

from __future__ import annotations

from typing import Any

import pytest

from cds.evaluation import Evaluation, Evaluator
from tests.conftest import NOW
from tests.helpers import LOINC, bundle, mdd, phq9, statement

ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SERTRALINE, ESCITALOPRAM, PHENELZINE, LITHIUM = "36437", "321988", "8123", "6448"


def condition(
    rid: str,
    code: str,
    *,
    status: str = "active",
    onset: str = "2024-06-01",
    verification: str | None = None,
    text: str = "",
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": {"coding": [{"code": status}]},
        "code": {"coding": [{"system": ICD, "code": code}], "text": text or code},
        "onsetDateTime": onset,
    }
    if verification:
        res["verificationStatus"] = {"coding": [{"code": verification}]}
    return res


def lab(
    rid: str, code: str, day: str, value: float, unit: str, low: float | None = None, high: float | None = None
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "effectiveDateTime": day,
        "valueQuantity": {"value": value, "unit": unit, "code": unit},
    }
    if low is not None or high is not None:
        res["referenceRange"] = [
            {
                **({"low": {"value": low, "unit": unit}} if low is not None else {}),
                **({"high": {"value": high, "unit": unit}} if high is not None else {}),
            }
        ]
    return res


def trd_history() -> list[dict[str, Any]]:
    """Two adequate failed trials: the patient meets the TRD definition, so safety screening applies."""
    return [
        mdd("c-mdd", "2024-06-01"),
        phq9("p1", "2025-01-01", 20),
        statement("s1", SERTRALINE, "2025-01-01", "2025-03-15", mg=100),
        phq9("p2", "2025-03-15", 18),
        statement("s2", ESCITALOPRAM, "2025-04-01", "2025-06-15", mg=20),
        phq9("p3", "2025-06-15", 17),
    ]


def run(ev: Evaluator, *resources: dict[str, Any], trd: bool = True) -> Evaluation:
    return ev.evaluate_bytes(bundle(*(trd_history() if trd else [mdd("c-mdd", "2024-06-01")]), *resources), NOW)


def fired(result: Evaluation, rule: str) -> list[str]:
    return [f.summary for f in result.findings if f.rule == rule]


@pytest.fixture(params=["durable", "reference"])
def ev(request: pytest.FixtureRequest, durable: Evaluator, reference: Evaluator) -> Evaluator:
    return durable if request.param == "durable" else reference


def test_baseline_patient_meets_trd(ev: Evaluator) -> None:
    assert run(ev).trd_status == "meets"


def test_active_hypothyroidism_fires_resolved_and_entered_in_error_do_not(ev: Evaluator) -> None:
    assert fired(run(ev, condition("h", "E03.9", text="Hypothyroidism")), "confounder.thyroid-diagnosis")
    assert not fired(run(ev, condition("h", "E03.9", status="resolved")), "confounder.thyroid-diagnosis")
    assert not fired(run(ev, condition("h", "E03.9", verification="entered-in-error")), "confounder.thyroid-diagnosis")


def test_tsh_out_of_range_fires_normal_tsh_does_not(ev: Evaluator) -> None:
    assert fired(run(ev, lab("t", "3016-3", "2025-10-01", 8.2, "mIU/L", 0.4, 4.0)), "confounder.thyroid-lab")
    normal = run(ev, lab("t", "3016-3", "2025-10-01", 2.1, "mIU/L", 0.4, 4.0))
    assert not fired(normal, "confounder.thyroid-lab")
    assert not fired(normal, "confounder.thyroid-unassessed")


def test_missing_tsh_is_reported_during_a_trd_workup_only(ev: Evaluator) -> None:
    assert fired(run(ev), "confounder.thyroid-unassessed")
    assert not fired(run(ev, trd=False), "confounder.thyroid-unassessed")
    assert fired(run(ev, lab("t", "3016-3", "2024-01-01", 2.1, "mIU/L")), "confounder.thyroid-unassessed")


def test_anxiety_by_diagnosis_and_by_gad7(ev: Evaluator) -> None:
    assert fired(run(ev, condition("a", "F41.1")), "confounder.anxiety-diagnosis")
    gad7 = {
        "resourceType": "Observation",
        "id": "g",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "70274-6"}]},
        "effectiveDateTime": "2025-12-01",
    }
    assert fired(run(ev, {**gad7, "valueInteger": 14}), "confounder.anxiety-gad7")
    assert not fired(run(ev, {**gad7, "valueInteger": 6}), "confounder.anxiety-gad7")


def test_bipolar_history_changes_the_pathway(ev: Evaluator) -> None:
    result = run(ev, condition("b", "F31.4", status="inactive"))
    assert fired(result, "confounder.bipolar")
    assert not fired(result, "confounder.bipolar-antidepressant")  # not active
    active = run(ev, condition("b", "F31.4"), statement("x", SERTRALINE, "2025-12-20", None, mg=50, status="active"))
    assert fired(active, "confounder.bipolar-antidepressant")


def test_substance_use_active_versus_in_remission(ev: Evaluator) -> None:
    assert fired(run(ev, condition("u", "F10.20")), "confounder.substance-use")
    assert fired(run(ev, condition("u", "F10.20")), "safety.ketamine-active-substance-use")
    assert not fired(run(ev, condition("u", "F10.21")), "confounder.substance-use")
    assert not fired(run(ev, condition("u", "F17.210")), "confounder.substance-use")  # nicotine is not SUD here


def test_esketamine_contraindication_and_cautions(ev: Evaluator) -> None:
    result = run(ev, condition("an", "I67.1", text="Cerebral aneurysm"))
    assert [f.indicator for f in result.findings if f.rule == "safety.esketamine-vascular"] == ["critical"]
    assert fired(run(ev), "safety.esketamine-no-recent-bp")
    high = run(ev, lab("bp", "8480-6", "2026-01-10", 162, "mm[Hg]"))
    assert fired(high, "safety.esketamine-systolic-bp") and not fired(high, "safety.esketamine-no-recent-bp")
    normal = run(ev, lab("bp", "8480-6", "2026-01-10", 122, "mm[Hg]"))
    assert not fired(normal, "safety.esketamine-systolic-bp")
    assert not fired(run(ev, trd=False), "safety.esketamine-no-recent-bp")  # not a candidate


def test_bp_panel_components_are_read(ev: Evaluator) -> None:
    panel = {
        "resourceType": "Observation",
        "id": "bp",
        "status": "final",
        "effectiveDateTime": "2026-01-12",
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
        "component": [
            {
                "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                "valueQuantity": {"value": 128, "unit": "mm[Hg]"},
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                "valueQuantity": {"value": 96, "unit": "mm[Hg]"},
            },
        ],
    }
    result = run(ev, panel)
    assert fired(result, "safety.esketamine-diastolic-bp")
    assert not fired(result, "safety.esketamine-systolic-bp")


def test_pregnancy_excludes_ketamine(ev: Evaluator) -> None:
    result = run(ev, condition("preg", "Z33.1", onset="2025-11-01"))
    assert fired(result, "safety.ketamine-pregnancy") and fired(result, "safety.esketamine-pregnancy")


def test_maoi_overlap_is_critical_and_a_washout_is_respected(ev: Evaluator) -> None:
    overlap = run(
        ev,
        statement("m", PHENELZINE, "2025-12-01", None, mg=45, status="active"),
        statement("x", SERTRALINE, "2026-01-05", None, mg=50, status="active"),
        trd=False,
    )
    assert [f.indicator for f in overlap.findings if f.rule == "safety.maoi-interaction"] == ["critical"]
    washed_out = run(
        ev,
        statement("m", PHENELZINE, "2025-10-01", "2025-12-10", mg=45),
        statement("x", SERTRALINE, "2026-01-09", None, mg=50, status="active"),
        trd=False,
    )
    assert not fired(washed_out, "safety.maoi-interaction")  # stopped 30 days before the SSRI started


def test_lithium_monitoring(ev: Evaluator) -> None:
    on_lithium = statement("li", LITHIUM, "2025-06-01", None, mg=600, status="active")
    result = run(ev, on_lithium, trd=False)
    assert fired(result, "safety.lithium-level-overdue")
    assert fired(result, "safety.lithium-renal-thyroid-overdue")
    checked = run(
        ev,
        on_lithium,
        lab("l", "14334-7", "2025-12-01", 0.7, "mmol/L"),
        lab("e", "62238-1", "2025-12-01", 85, "mL/min/{1.73_m2}"),
        lab("t", "3016-3", "2025-12-01", 2.0, "mIU/L"),
        trd=False,
    )
    assert not fired(checked, "safety.lithium-level-overdue")
    toxic = run(ev, on_lithium, lab("l", "14334-7", "2026-01-10", 1.8, "mmol/L"), trd=False)
    assert [f.indicator for f in toxic.findings if f.rule == "safety.lithium-level-toxic"] == ["critical"]
    assert not fired(run(ev, trd=False), "safety.lithium-level-overdue")  # not on lithium


def test_nonadherence_from_a_not_taken_statement(ev: Evaluator) -> None:
    not_taken = statement(
        "n",
        SERTRALINE,
        "2025-01-01",
        "2025-02-01",
        status="not-taken",
        statusReason=[{"text": "patient stopped taking it"}],
    )
    assert fired(run(ev, not_taken), "confounder.nonadherence-not-taken")
    assert not fired(run(ev), "confounder.nonadherence-not-taken")


def test_every_screen_finding_names_evidence_and_source(ev: Evaluator) -> None:
    result = run(ev, condition("an", "I67.1"), condition("a", "F41.1"), condition("u", "F10.20"))
    for f in result.findings:
        if f.category in ("confounder", "safety") and f.rule not in (
            "safety.esketamine-rems",
            "safety.rtms-implants-unknown",
            "safety.esketamine-no-recent-bp",
            "confounder.thyroid-unassessed",
        ):
            assert f.evidence, f.rule
        assert f.source.label, f.rule


def draft(rid: str, code: str, mg: float) -> dict[str, Any]:
    """A draft order, as CDS Hooks order-select / order-sign send it in draftOrders."""
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code}]
        },
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg", "code": "mg"}}],
            }
        ],
    }


def test_draft_orders_are_checked_but_are_not_trials(ev: Evaluator) -> None:
    on_sertraline = statement("x", SERTRALINE, "2025-12-01", None, mg=100, status="active")
    maoi = run(ev, on_sertraline, draft("o", PHENELZINE, 45), trd=False)
    assert [f.indicator for f in maoi.findings if f.rule == "safety.maoi-interaction"] == ["critical"]
    assert [t.trial.ingredient for t in maoi.trials] == ["sertraline"]
    duplicate = run(ev, on_sertraline, draft("o", ESCITALOPRAM, 10), trd=False)
    assert fired(duplicate, "safety.duplicate-antidepressant")
    assert not fired(run(ev, on_sertraline, draft("o", "15996", 30), trd=False), "safety.duplicate-antidepressant")
    low = run(ev, draft("o", SERTRALINE, 25), trd=False)
    assert fired(low, "safety.order-dose-below-minimum")
    assert not fired(run(ev, draft("o", SERTRALINE, 100), trd=False), "safety.order-dose-below-minimum")
    assert fired(run(ev, draft("o", SERTRALINE, 300), trd=False), "safety.order-dose-above-maximum")


def test_esketamine_order_is_screened_even_before_trd_is_established(ev: Evaluator) -> None:
    result = run(ev, condition("an", "I67.1"), draft("o", "2119365", 56), trd=False)
    assert [f.indicator for f in result.findings if f.rule == "safety.esketamine-vascular"] == ["critical"]
