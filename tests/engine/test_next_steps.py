"""Next-step options: the guideline order for the patient's facts, nothing contraindicated or failed offered,
every option explained, every order template valid FHIR R4."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from cds.evaluation import Evaluation, Evaluator
from cds.knowledge import load_knowledge
from cds.render.json_contract import to_contract
from tests.conftest import NOW, example_files
from tests.engine.test_screen import condition, trd_history
from tests.helpers import bundle, mdd, phq9, statement

SERTRALINE, ESCITALOPRAM, VENLAFAXINE, MIRTAZAPINE, BUPROPION = "36437", "321988", "39786", "15996", "42347"


@pytest.fixture(params=["durable", "reference"])
def ev(request: pytest.FixtureRequest, durable: Evaluator, reference: Evaluator) -> Evaluator:
    return durable if request.param == "durable" else reference


def options(result: Evaluation) -> list[tuple[str, bool]]:
    return [
        (f.code, f.attributes.get("eligible", True) is not False) for f in result.findings if f.category == "next-step"
    ]


def eligible(result: Evaluation) -> list[str]:
    return [code for code, ok in options(result) if ok]


def test_partial_response_at_low_dose_optimises_first(ev: Evaluator) -> None:
    result = ev.evaluate_bytes(
        bundle(
            mdd("c", "2025-09-01"),
            phq9("b", "2025-10-01", 20),
            statement("s", SERTRALINE, "2025-10-01", None, mg=50, status="active"),
            phq9("e", "2026-01-10", 13),
        ),
        NOW,
    )
    assert result.trials[0].trial.outcome.outcome == "partial_response"
    assert eligible(result)[0] == "option-optimize-dose"
    detail = next(f.detail for f in result.findings if f.code == "option-optimize-dose")
    assert "sertraline 50 mg" in detail and "20 -> 13" in detail and "200" in detail


def test_intolerance_favours_a_switch_over_augmentation(ev: Evaluator) -> None:
    stopped = statement(
        "m",
        MIRTAZAPINE,
        "2025-11-01",
        "2025-11-20",
        mg=30,
        status="stopped",
        statusReason=[{"text": "weight gain and sedation (adverse effect)"}],
    )
    result = ev.evaluate_bytes(bundle(*trd_history(), stopped), NOW)
    assert "option-switch" in eligible(result)
    assert "option-augment-antipsychotic" not in eligible(result)


def test_psychotic_features_put_ect_and_antipsychotic_combination_first(ev: Evaluator) -> None:
    result = ev.evaluate_bytes(bundle(*trd_history(), condition("psy", "F33.3", text="MDD, recurrent, psychotic")), NOW)
    first_two = eligible(result)[:2]
    assert sorted(first_two) == ["option-augment-antipsychotic", "option-ect"]
    assert all(
        f.attributes.get("priority") == "urgent"
        for f in result.findings
        if f.category == "next-step" and f.code in first_two and f.rule != "next.augment-antipsychotic"
    )


def test_contraindicated_esketamine_is_not_offered_and_says_why(ev: Evaluator) -> None:
    result = ev.evaluate_bytes(bundle(*trd_history(), condition("an", "I67.1", text="Cerebral aneurysm")), NOW)
    assert ("option-esketamine", True) not in options(result)
    refused = next(f for f in result.findings if f.code == "option-esketamine")
    assert refused.attributes["eligible"] is False and "Cerebral aneurysm" in refused.detail
    assert options(result)[-1][1] is False  # not-eligible options come last


def test_four_failures_in_recurrent_depression_show_vns(ev: Evaluator) -> None:
    def trial(rid: str, code: str, start: str, end: str, mg: float) -> list[dict[str, Any]]:
        return [phq9(f"{rid}b", start, 20), statement(rid, code, start, end, mg=mg), phq9(f"{rid}e", end, 19)]

    resources = [condition("mdd", "F33.2", onset="2023-01-01")]
    resources += trial("a", SERTRALINE, "2023-02-01", "2023-04-15", 100)
    resources += trial("b", VENLAFAXINE, "2023-05-01", "2023-07-15", 225)
    resources += trial("c", BUPROPION, "2023-08-01", "2023-10-15", 300)
    resources += trial("d", ESCITALOPRAM, "2023-11-01", "2024-01-15", 20)
    result = ev.evaluate_bytes(bundle(*resources), NOW)
    assert result.failed_adequate_trials == 4
    assert "option-vns" in eligible(result)
    assert "option-vns" not in eligible(ev.evaluate_bytes(bundle(*trd_history()), NOW))


def test_failed_augmentation_is_not_offered_again(ev: Evaluator) -> None:
    aripiprazole = statement("ar", "89013", "2025-04-01", "2025-06-15", mg=5)
    current = [
        statement("cur", VENLAFAXINE, "2025-07-01", None, mg=225, status="active"),
        phq9("cb", "2025-06-20", 17),
        phq9("ce", "2026-01-10", 16),
    ]
    result = ev.evaluate_bytes(bundle(*trd_history(), aripiprazole, *current), NOW)
    offered = [
        f.summary
        for f in result.findings
        if f.code == "option-augment-antipsychotic" and f.attributes.get("eligible") is not False
    ]
    assert offered and all("aripiprazole" not in s for s in offered)
    assert any("Not offered: aripiprazole" in f.summary for f in result.findings)


def test_bipolar_disorder_gets_no_unipolar_options(ev: Evaluator) -> None:
    result = ev.evaluate_bytes(bundle(*trd_history(), condition("bp", "F31.4")), NOW)
    assert eligible(result) == []


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.stem)
def test_every_order_template_is_valid_fhir(path: Any, durable: Evaluator) -> None:
    doc = to_contract(durable.evaluate_path(path, NOW))
    for finding in doc["findings"]:
        template = finding.get("order_template")
        if template is not None:
            get_fhir_model_class(template["resourceType"]).model_validate(template)
        if finding["category"] == "next-step":
            assert finding["detail"] and finding["source"]["label"]


def test_nothing_to_augment_without_a_current_antidepressant(ev: Evaluator) -> None:
    result = ev.evaluate_bytes(bundle(*trd_history()), NOW)  # last antidepressant stopped months ago
    assert "option-switch" in eligible(result)
    assert not {"option-augment-antipsychotic", "option-augment-lithium", "option-augment-thyroid-hormone"} & set(
        eligible(result)
    )


def _partial_response() -> bytes:
    return bundle(
        mdd("c", "2025-09-01"),
        phq9("b", "2025-10-01", 20),
        statement("s", SERTRALINE, "2025-10-01", None, mg=50, status="active"),
        phq9("e", "2026-01-10", 13),
    )


def _combined(result: Evaluation) -> set[str]:
    return {str(f.proposal["ingredient"]) for f in result.findings if f.code == "option-combine" and f.proposal}


@pytest.mark.parametrize("kind", ["durable", "reference"])
def test_an_agent_a_rule_author_adds_is_offered(kind: str, tmp_path: Path) -> None:
    """Which agents a rule offers is data: naming trazodone in the combination rule is enough for it to be offered
    (the stage makes `agent` facts for the ingredients its rules name)."""
    rules = tmp_path / "rules"
    shutil.copytree(load_knowledge().rules_dir, rules)
    path = rules / "next_steps.yaml"
    text = path.read_text()
    assert text.count("value: [bupropion, mirtazapine]") == 1
    path.write_text(text.replace("value: [bupropion, mirtazapine]", "value: [bupropion, mirtazapine, trazodone]"))
    edited = Evaluator(load_knowledge(rules), kind=kind)  # type: ignore[arg-type]
    assert _combined(edited.evaluate_bytes(_partial_response(), NOW)) == {"bupropion", "mirtazapine", "trazodone"}


def test_an_agent_no_rule_names_is_not_offered(ev: Evaluator) -> None:
    assert _combined(ev.evaluate_bytes(_partial_response(), NOW)) == {"bupropion", "mirtazapine"}
