"""The case format: compact codes, shorthands, folder conventions, expectations."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.authoring.cases import CaseError, coding, concept, expand, expand_resources, load_case, load_cases

from .conftest import PATIENTS


def test_compact_codes() -> None:
    assert coding("rxnorm#36437 sertraline") == {
        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
        "code": "36437",
        "display": "sertraline",
    }
    assert coding("loinc#44261-6") == {"system": "http://loinc.org", "code": "44261-6"}
    assert coding("http://example.org/cs#x1 Local") == {
        "system": "http://example.org/cs",
        "code": "x1",
        "display": "Local",
    }
    assert concept("icd10#F33.1") == {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F33.1"}]}
    assert concept("free text only") == {"text": "free text only"}
    with pytest.raises(CaseError, match="unknown code system alias"):
        coding("rxnrom#36437")


def test_raw_resources_expand_codes_in_place() -> None:
    res = expand(
        {"resourceType": "Condition", "code": "snomed#370143000 MDD", "meta": {"tag": [{"coding": ["loinc#1-8"]}]}}
    )
    assert res["code"]["coding"][0]["system"] == "http://snomed.info/sct"
    assert res["meta"]["tag"][0]["coding"][0] == {"system": "http://loinc.org", "code": "1-8"}


def test_shorthands() -> None:
    resources = expand_resources(
        [
            {
                "medication_statement": {
                    "code": "rxnorm#36437 sertraline",
                    "dose": "50 mg twice daily",
                    "start": "2025-01-01",
                }
            },
            {
                "medication_request": {
                    "code": "rxnorm#321988 escitalopram",
                    "dose_text": "10 mg daily",
                    "start": "2025-02-01",
                    "end": "2025-03-01",
                }
            },
            {"phq9": {"date": "2025-01-01", "score": 18}},
            {"condition": {"code": "icd10#F33.1", "onset": "2024-12-01"}},
            {"allergy": {"code": "rxnorm#36437 sertraline"}},
        ]
    )
    patient, ms, mr, obs, cond, ai = resources
    assert patient == {"resourceType": "Patient", "id": "p1"}
    dose = ms["dosage"][0]
    assert dose["doseAndRate"][0]["doseQuantity"]["value"] == 50.0
    assert dose["timing"]["repeat"]["frequency"] == 2
    assert ms["status"] == "active" and ms["effectivePeriod"] == {"start": "2025-01-01"}
    assert mr["dosageInstruction"][0]["text"] == "10 mg daily"
    assert mr["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] == {
        "start": "2025-02-01",
        "end": "2025-03-01",
    }
    assert obs["code"]["coding"][0]["code"] == "44261-6" and obs["valueInteger"] == 18
    assert cond["clinicalStatus"]["coding"][0]["code"] == "active"
    assert ai["type"] == "intolerance" and ai["patient"] == {"reference": "Patient/p1"}
    with pytest.raises(CaseError, match="unknown keys"):
        expand_resources([{"phq9": {"date": "2025-01-01", "scor": 3}}])
    with pytest.raises(CaseError, match="dose_text"):
        expand_resources([{"medication_statement": {"code": "rxnorm#36437", "dose": "two tablets"}}])


def test_folder_names_the_rule_and_prefix_the_polarity() -> None:
    path = PATIENTS / "adequacy" / "dose-below-minimum" / "in-venlafaxine-75mg.yaml"
    case = load_case(path, PATIENTS)
    assert case.folder_rule == "adequacy.dose-below-minimum" and case.polarity == "in"
    assert "adequacy.dose-below-minimum" in case.fired
    out = load_case(PATIENTS / "adequacy" / "dose-below-minimum" / "out-venlafaxine-150mg.yaml", PATIENTS)
    assert "adequacy.dose-below-minimum" in out.not_fired


def test_only_restricts_the_run(tmp_path: Path) -> None:
    base = (PATIENTS / "trd" / "criteria-not-met" / "in-one-failed-trial.yaml").read_text()
    (tmp_path / "a.yaml").write_text(base)
    (tmp_path / "b.yaml").write_text(base + "only: true\n")
    (tmp_path / "c.yaml").write_text("description: broken\nnow: 2026-01-15\n")
    cases, errors = load_cases([tmp_path])
    assert [c.name for c in cases] == ["b"]
    assert len(errors) == 1 and "resources" in errors[0][1]


PENDING = PATIENTS / "_uncovered.txt"


def test_every_rule_has_an_in_and_an_out_case() -> None:
    """Every active rule has an in- and an out- case, except those still listed in tests/patients/_uncovered.txt.
    The list only shrinks: a listed rule that now has both cases must be removed from it."""
    from cds.engine.ir import load_modules
    from cds.knowledge import cached_knowledge

    knowledge = cached_knowledge()
    rules = {r.id for m in load_modules(knowledge.rules_dir, knowledge.config) for r in m.rules if r.status == "active"}
    cases, errors = load_cases([PATIENTS])
    assert not errors
    cases = [c.for_rules(rules) for c in cases]
    ins = {c.folder_rule for c in cases if c.polarity == "in"}
    outs = {c.folder_rule for c in cases if c.polarity == "out"}
    pending = {line.split("#")[0].strip() for line in PENDING.read_text().splitlines() if line.split("#")[0].strip()}
    uncovered = {r for r in rules if r not in ins or r not in outs}
    assert uncovered <= pending, f"rules without an in- and an out- case: {sorted(uncovered - pending)}"
    assert not (pending & (rules - uncovered)), (
        f"covered now, remove from _uncovered.txt: {sorted(pending & (rules - uncovered))}"
    )
