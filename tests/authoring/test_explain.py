"""`cds explain`: why a rule fired (facts and evidence) or why not (the failing test and the value seen)."""

from __future__ import annotations

from typer.testing import CliRunner

from cds.authoring.cases import load_case
from cds.engine.explain import explain, trace
from cds.evaluation import Evaluator
from cds.knowledge import cached_knowledge

from .conftest import PATIENTS

runner = CliRunner()
VENLAFAXINE = PATIENTS / "adequacy" / "dose-below-minimum" / "in-venlafaxine-75mg.yaml"


def _traces(path):  # type: ignore[no-untyped-def]
    ev = Evaluator(cached_knowledge(), kind="reference")
    case = load_case(path)
    return ev.engine, trace(ev.engine, ev.facts(case.bundle_bytes(), case.data.now))


def test_fired_rule_names_its_facts_and_evidence() -> None:
    engine, traces = _traces(VENLAFAXINE)
    ex = explain(engine.rules["adequacy.dose-below-minimum"], traces["classify"])
    assert ex.fired
    (bound,) = ex.activations[0]
    assert bound.fact["ingredient"] == "venlafaxine" and bound.fact["max_daily_dose_mg"] == 75
    assert any(ref.startswith("MedicationStatement/") for ref in bound.evidence)


def test_rule_not_fired_names_the_failed_test_and_value() -> None:
    engine, traces = _traces(VENLAFAXINE)
    ex = explain(engine.rules["adequacy.adequate"], traces["classify"])
    assert not ex.fired
    (cand,) = ex.patterns[0].candidates
    failed = [r for r in cand.results if not r.passed]
    assert [r.test.field for r in failed] == ["weeks_at_adequate_dose"]
    assert failed[0].seen == 0 and failed[0].expected == 6


def test_cross_fact_pattern_not_reached() -> None:
    engine, traces = _traces(VENLAFAXINE)
    ex = explain(engine.rules["outcome.failed-adequate-trial"], traces["classify"])
    assert not ex.fired
    assert ex.patterns[0].candidates and not any(c.matched for c in ex.patterns[0].candidates)
    assert ex.patterns[1].reached is False


def test_cli() -> None:
    from cds.cli import app

    result = runner.invoke(app, ["explain", str(VENLAFAXINE), "--rule", "adequacy.adequate"])
    assert result.exit_code == 0, result.output
    assert "DID NOT FIRE" in result.output and "saw weeks_at_adequate_dose=0" in result.output
    result = runner.invoke(app, ["explain", str(VENLAFAXINE), "--rule", "adequacy.adequat"])
    assert result.exit_code == 2 and "adequacy.adequate" in result.output
