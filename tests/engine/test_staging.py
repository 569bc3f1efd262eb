"""Staging models from the same facts: the reference's worked example "Patient X" and the §3.6 edge cases."""

from __future__ import annotations

from typing import Any

import pytest

from cds.evaluation import Evaluation, Evaluator
from cds.render.json_contract import to_contract
from tests.conftest import NOW
from tests.helpers import bundle, mdd, phq9, statement

INSTRUMENT = "https://trd-cds.example.org/fhir/CodeSystem/instrument"
SERTRALINE, ESCITALOPRAM, VENLAFAXINE, MIRTAZAPINE = "36437", "321988", "39786", "15996"
NORTRIPTYLINE, ARIPIPRAZOLE = "7531", "89013"


def hamd(rid: str, day: str, value: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": INSTRUMENT, "code": "hamd17-total"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": day,
        "valueInteger": value,
    }


def patient_x() -> bytes:
    """Staging reference §3: episode 20 months before now, baseline HAM-D17 21; sertraline 100 mg 6 weeks then
    200 mg 4 weeks; venlafaxine XR 225 mg 8 weeks then aripiprazole 5 mg added for 6 weeks; mirtazapine 15 mg
    stopped after 3 weeks for sedation; nortriptyline 100 mg 8 weeks. No ECT."""
    return bundle(
        mdd("c1", "2024-05-15"),
        hamd("h0", "2024-05-20", 21),
        statement("t1a", SERTRALINE, "2024-06-03", "2024-07-14", mg=100),
        statement("t1b", SERTRALINE, "2024-07-15", "2024-08-11", mg=200),
        hamd("h1", "2024-08-10", 17),
        statement("t2", VENLAFAXINE, "2024-08-19", "2024-11-24", mg=225, display="venlafaxine XR"),
        statement("t2b", ARIPIPRAZOLE, "2024-10-14", "2024-11-24", mg=5),
        hamd("h2", "2024-11-22", 13),
        statement(
            "t3",
            MIRTAZAPINE,
            "2024-12-02",
            "2024-12-22",
            mg=15,
            status="stopped",
            statusReason=[{"text": "stopped because of sedation (side effect)"}],
        ),
        hamd("h3", "2025-01-03", 14),
        statement("t4", NORTRIPTYLINE, "2025-01-06", "2025-03-02", mg=100),
        hamd("h4", "2025-03-01", 13),
    )


@pytest.mark.parametrize("kind", ["durable", "reference"])
def test_patient_x_matches_the_worked_example(kind: str, durable: Evaluator, reference: Evaluator) -> None:
    ev = (durable if kind == "durable" else reference).evaluate_bytes(patient_x(), NOW)
    assert [(t.trial.ingredient, t.adequacy, t.trial.outcome.outcome) for t in ev.trials] == [
        ("sertraline", "adequate", "nonresponse"),
        ("venlafaxine", "adequate", "nonresponse"),
        ("mirtazapine", "inadequate_duration", "intolerance"),
        ("nortriptyline", "adequate", "nonresponse"),
    ]
    st = to_contract(ev)["staging"]
    assert (st["thase_rush"]["stage"], st["thase_rush"]["label"]) == (3, "III")
    assert st["mgh"]["score"] == 4.0
    assert sorted((c["component"], c["points"]) for c in st["mgh"]["components"]) == [
        ("augmentation", 0.5),
        ("dose-optimisation", 0.5),
        ("failed-trial", 1.0),
        ("failed-trial", 1.0),
        ("failed-trial", 1.0),
    ]
    assert st["european"]["level"] == "TRD2"
    assert st["european"]["cumulative_adequate_weeks"] == 32.0
    assert (st["european"]["level_by_weeks"], st["european"]["levels_disagree"]) == ("TRD3", True)
    assert (st["maudsley"]["score"], st["maudsley"]["category"]) == (8.0, "moderate")
    assert {c["component"]: c["points"] for c in st["maudsley"]["components"]} == {
        "duration": 2,
        "severity": 3,
        "failed-medications": 2,
        "augmentation": 1,
        "ect": 0,
    }
    assert st["dm_trd"]["computed"] is False and "Peeters" in st["dm_trd"]["reason"]
    for model in ("thase_rush", "mgh", "european", "maudsley"):
        for component in st[model]["components"]:
            assert component["evidence"], (model, component)
            assert component["rule"].startswith("staging.")


def staging(ev: Evaluation) -> dict[str, Any]:
    return to_contract(ev)["staging"]


def trial(rid: str, code: str, start: str, end: str, base: int, final: int, mg: float) -> list[dict[str, Any]]:
    return [phq9(f"{rid}-b", start, base), statement(rid, code, start, end, mg=mg), phq9(f"{rid}-e", end, final)]


def test_two_ssris_stay_at_stage_one_and_are_not_trd_under_the_european_model(reference: Evaluator) -> None:
    ev = reference.evaluate_bytes(
        bundle(
            mdd(),
            *trial("a", SERTRALINE, "2025-01-01", "2025-03-15", 20, 18, 100),
            *trial("b", ESCITALOPRAM, "2025-04-01", "2025-06-15", 18, 17, 20),
        ),
        NOW,
    )
    st = staging(ev)
    assert ev.trd_status == "meets"  # the >= 2 failures definition counts them
    assert st["thase_rush"]["stage"] == 1
    assert st["european"]["level"] == "non_responder"
    assert st["mgh"]["score"] == 2.0
    assert {c["component"]: c["points"] for c in st["maudsley"]["components"]}["failed-medications"] == 1


def test_no_failure_gives_stage_zero_and_maudsley_not_applicable(reference: Evaluator) -> None:
    ev = reference.evaluate_bytes(bundle(mdd(), *trial("a", SERTRALINE, "2025-01-01", "2025-03-15", 20, 4, 100)), NOW)
    st = staging(ev)
    assert st["thase_rush"]["stage"] == 0
    assert st["maudsley"]["score"] is None and st["maudsley"]["computed"] is False
    assert "no adequate antidepressant trial failed" in st["maudsley"]["reason"]
    assert st["european"]["level"] is None
    assert st["mgh"]["score"] is None


def test_rechallenge_of_the_same_drug_is_not_a_new_trial(reference: Evaluator) -> None:
    ev = reference.evaluate_bytes(
        bundle(
            mdd(),
            *trial("a", SERTRALINE, "2025-01-01", "2025-03-15", 20, 18, 100),
            *trial("b", SERTRALINE, "2025-06-01", "2025-08-15", 18, 17, 150),
        ),
        NOW,
    )
    assert len(ev.trials) == 2
    assert ev.failed_adequate_trials == 1
    assert ev.trd_status == "does_not_meet"
    assert staging(ev)["mgh"]["score"] == 1.0


def test_intolerance_and_early_stop_are_not_failures(reference: Evaluator) -> None:
    stopped = statement(
        "m",
        MIRTAZAPINE,
        "2025-01-01",
        "2025-01-20",
        mg=30,
        status="stopped",
        statusReason=[{"text": "weight gain, adverse effect"}],
    )
    early = statement("c", "2556", "2025-02-01", "2025-02-20", mg=20)
    ev = reference.evaluate_bytes(
        bundle(mdd(), stopped, early, phq9("x", "2025-01-01", 20), phq9("y", "2025-02-20", 19)), NOW
    )
    assert ev.failed_adequate_trials == 0
    assert staging(ev)["thase_rush"]["stage"] == 0


def test_tachyphylaxis_is_not_a_failure(reference: Evaluator) -> None:
    ev = reference.evaluate_bytes(
        bundle(mdd(), *trial("a", SERTRALINE, "2025-01-01", "2025-04-15", 20, 17, 100), phq9("mid", "2025-02-20", 6)),
        NOW,
    )
    assert ev.trials[0].trial.outcome.outcome == "response" and ev.trials[0].trial.outcome.response_lost
    assert staging(ev)["thase_rush"]["stage"] == 0


def test_psychotic_features_give_maudsley_severity_five(reference: Evaluator) -> None:
    psychotic = {
        "resourceType": "Condition",
        "id": "psy",
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F33.3"}]},
        "onsetDateTime": "2024-01-01",
    }
    ev = reference.evaluate_bytes(
        bundle(psychotic, *trial("a", SERTRALINE, "2025-01-01", "2025-03-15", 20, 18, 100)), NOW
    )
    components = {c["component"]: c["points"] for c in staging(ev)["maudsley"]["components"]}
    assert components["severity"] == 5


def test_failed_bilateral_ect_adds_stage_five_and_three_mgh_points(reference: Evaluator) -> None:
    def ect(rid: str, day: str) -> dict[str, Any]:
        return {
            "resourceType": "Procedure",
            "id": rid,
            "status": "completed",
            "code": {
                "coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "90870"}],
                "text": "ECT, bilateral",
            },
            "performedDateTime": day,
        }

    resources = [mdd("c1", "2022-11-01")]
    resources += trial("s", SERTRALINE, "2022-12-01", "2023-02-15", 22, 20, 100)
    resources += trial("v", VENLAFAXINE, "2023-05-01", "2023-07-15", 20, 19, 225)
    resources += trial("n", NORTRIPTYLINE, "2023-08-01", "2023-10-15", 19, 18, 100)
    resources += trial("p", "8123", "2023-11-01", "2024-01-15", 18, 18, 60)
    resources += [
        phq9("e0", "2024-02-01", 18),
        ect("e1", "2024-02-05"),
        ect("e2", "2024-02-20"),
        ect("e3", "2024-03-10"),
        phq9("e4", "2024-03-12", 17),
    ]
    st = staging(reference.evaluate_bytes(bundle(*resources), NOW))
    assert st["thase_rush"]["stage"] == 5
    assert st["mgh"]["score"] == 4 + 3
    assert {c["component"]: c["points"] for c in st["maudsley"]["components"]}["ect"] == 1
    assert st["european"]["level"] == "CRD"  # failures span more than 12 months without response
