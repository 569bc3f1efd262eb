"""Finding -> card mapping: summary length, stable uuid, order, de-duplication, suggestions hook."""

from __future__ import annotations

from typing import Any

from cds.findings import Finding, FindingSource
from cds.hooks.cards import card_uuid, cards_for, order_templates, suggestions_for
from cds.hooks.rule_docs import FINDING_SYSTEM, rule_catalog
from cds.hooks.settings import HookSettings


def _finding(rule: str = "trd.criteria-met", indicator: str = "info", subject: str | None = None, **kw: Any) -> Finding:
    values: dict[str, Any] = {
        "code": "trd-criteria-met",
        "rule": rule,
        "rule_version": "1.0.0",
        "category": "trd",
        "indicator": indicator,
        "summary": "short",
        "detail": "why <b>it</b> matters",
        "evidence": ("MedicationStatement/a",),
        "source": FindingSource(label="Guideline", url="https://example.org/g", confidence="C"),
        "subject": subject,
    }
    values.update(kw)
    return Finding(**values)


SETTINGS = HookSettings(public_base_url="https://cds.example.org/")


def test_card_fields() -> None:
    long = _finding(summary="x" * 300)
    (card,) = cards_for([long], "p1", SETTINGS, rule_catalog())
    assert len(card["summary"]) < 140
    assert card["indicator"] == "info"
    assert card["source"]["topic"] == {
        "system": FINDING_SYSTEM,
        "code": "trd-criteria-met",
        "display": "TRD criteria met",
    }
    assert card["source"]["url"] == "https://example.org/g"
    assert "`MedicationStatement/a`" in card["detail"] and "<b>" not in card["detail"]
    assert card["links"] == [
        {
            "label": "Rule trd.criteria-met v1.0.0",
            "url": "https://cds.example.org/rules/trd.criteria-met",
            "type": "absolute",
        }
    ]
    assert all(r["display"] for r in card["overrideReasons"])
    assert "suggestions" not in card and "selectionBehavior" not in card  # nothing to suggest: keys left out
    assert all(v not in (None, "", [], {}) for v in card.values())


def test_uuid_is_stable_per_patient_rule_subject() -> None:
    a, b = _finding(subject="trial-1"), _finding(subject="trial-1", summary="changed wording")
    assert card_uuid("p1", a) == card_uuid("p1", b)
    assert card_uuid("p1", a) != card_uuid("p2", a)
    assert card_uuid("p1", a) != card_uuid("p1", _finding(subject="trial-2"))


def test_order_and_dedupe() -> None:
    findings = [
        _finding("b.rule", "info"),
        _finding("a.rule", "info"),
        _finding("z.rule", "critical"),
        _finding("c.rule", "warning"),
        _finding("a.rule", "info"),
    ]
    cards = cards_for(findings, "p", SETTINGS, rule_catalog())
    assert [c["links"][0]["label"].split()[1] for c in cards] == ["z.rule", "c.rule", "a.rule", "b.rule"]


def test_suggestions_from_a_next_step_proposal() -> None:
    from fhir.resources.R4B import get_fhir_model_class

    from cds.knowledge import cached_knowledge

    plain = _finding()
    assert order_templates(plain) == () and suggestions_for(plain, card_uuid("p", plain), "p") == []
    option = plain.model_copy(update={"proposal": {"kind": "medication", "ingredient": "aripiprazole"}})
    (card,) = cards_for([option], "p", SETTINGS, rule_catalog(), cached_knowledge())
    assert card["selectionBehavior"] == "at-most-one"
    (suggestion,) = card["suggestions"]
    assert suggestion["label"] and suggestion["uuid"]
    (action,) = suggestion["actions"]
    assert action["type"] == "create" and action["description"]
    resource = action["resource"]
    assert resource["resourceType"] == "MedicationRequest" and resource["status"] == "draft"
    assert resource["subject"] == {"reference": "Patient/p"}
    assert resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 2  # CANMAT low end
    get_fhir_model_class("MedicationRequest").model_validate(resource)
    service = plain.model_copy(update={"proposal": {"kind": "service", "service": "rtms"}})
    (card,) = cards_for([service], "p", SETTINGS, rule_catalog(), cached_knowledge())
    assert card["suggestions"][0]["actions"][0]["resource"]["resourceType"] == "ServiceRequest"
