"""Findings -> CDS Hooks cards. Reads Findings only; never re-derives clinical logic.

Generic on purpose: every finding category (adequacy, TRD status, data quality, confounders, safety,
next-step options) becomes a card the same way. A card's uuid is stable per (patient, rule, subject), so
the same advice on the next chart opening has the same uuid and feedback can be joined to it.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cds.fhir.orders import order_template
from cds.findings import Finding
from cds.hooks.rule_docs import FINDING_SYSTEM, RuleCatalog
from cds.hooks.settings import HookSettings
from cds.knowledge import Knowledge

Json = dict[str, Any]
CARD_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, FINDING_SYSTEM)
SUMMARY_MAX = 139  # CDS Hooks: "<140-character"
INDICATOR_ORDER = {"critical": 0, "warning": 1, "info": 2}
SOURCE_LABEL_MAX = 200


def card_uuid(patient: str, finding: Finding) -> str:
    return str(uuid.uuid5(CARD_NAMESPACE, f"{patient}|{finding.rule}|{finding.subject or ''}"))


def truncate(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _markdown_escape(text: str) -> str:
    return text.replace("<", "&lt;")  # GFM allows HTML tags; we never emit any


def detail_markdown(finding: Finding) -> str:
    lines = [_markdown_escape(finding.detail or finding.summary)]
    if finding.evidence:
        lines.append("**Evidence:** " + ", ".join(f"`{ref}`" for ref in finding.evidence))
    source = finding.source
    lines.append(
        _provenance(
            source.label,
            source.url,
            source.confidence,
            finding.rule,
            finding.rule_version,
            finding.category,
            finding.needs_clinical_review,
        )
    )
    return "\n\n".join(lines)


@functools.lru_cache(maxsize=1024)
def _provenance(
    label: str, url: str | None, confidence: str | None, rule: str, version: str, category: str, review: bool
) -> str:
    """The closing lines of a card's detail: the same for every finding of a rule (made once per rule)."""
    label = _markdown_escape(label)
    cited = f"[{label}]({url})" if url else label
    if confidence:
        cited += f" (confidence {confidence})"
    lines = [f"**Source:** {cited}", f"**Rule:** `{rule}` v{version} ({category})"]
    if review:
        lines.append("_Uses values that need clinical review at this site._")
    return "\n\n".join(lines)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def order_templates(finding: Finding, patient: str = "", knowledge: Knowledge | None = None) -> Sequence[Any]:
    """The FHIR order templates a finding proposes (next-step options): its `proposal` rendered by
    cds.fhir.orders (a draft MedicationRequest or ServiceRequest)."""
    if finding.proposal and knowledge is not None:
        template = order_template(finding.proposal, f"Patient/{patient}" if patient else None, knowledge)
        return (template,) if template else ()
    return ()


def suggestions_for(finding: Finding, card_id: str, patient: str, knowledge: Knowledge | None = None) -> list[Json]:
    """Card suggestions from the finding's order templates; [] when there is nothing to suggest.

    A template may be a FHIR resource (dict) or an object/dict with `label`, `description` and `resource`.
    Each becomes one suggestion with a single `create` action for that resource (status draft, subject set)."""
    suggestions: list[Json] = []
    for i, template in enumerate(order_templates(finding, patient, knowledge)):
        item: Mapping[str, Any] = template if isinstance(template, Mapping) else getattr(template, "__dict__", {}) or {}
        if hasattr(template, "model_dump"):
            item = template.model_dump()
        resource = item.get("resource", item if "resourceType" in item else None)
        if not isinstance(resource, Mapping) or not isinstance(resource.get("resourceType"), str):
            continue
        resource = dict(resource)
        resource.setdefault("status", "draft")
        resource.setdefault("subject", {"reference": f"Patient/{patient}"})
        label = _text(item.get("label")) or _text(item.get("title")) or truncate(finding.summary, SUMMARY_MAX)
        description = _text(item.get("description")) or f"Create a draft {resource['resourceType']}: {label}"
        suggestions.append(
            {
                "label": truncate(label, SUMMARY_MAX),
                "uuid": str(uuid.uuid5(uuid.UUID(card_id), f"suggestion-{i}")),
                "actions": [{"type": "create", "description": description, "resource": resource}],
            }
        )
    return suggestions


def finding_card(
    finding: Finding,
    patient: str,
    settings: HookSettings,
    catalog: RuleCatalog,
    knowledge: Knowledge | None = None,
    card_id: str | None = None,
) -> Json:
    card_id = card_id or card_uuid(patient, finding)
    label, url = _source_label(finding.source.label), finding.source.url
    topic: Json = {"system": FINDING_SYSTEM, "code": finding.code}
    if finding.code in catalog.finding_displays:
        topic["display"] = catalog.finding_displays[finding.code]
    source: Json = {"label": label, "url": url, "topic": topic} if url else {"label": label, "topic": topic}
    card: Json = {
        "uuid": card_id,
        "summary": truncate(finding.summary, SUMMARY_MAX),
        "indicator": finding.indicator,
        "detail": detail_markdown(finding),
        "source": source,
    }
    suggestions = suggestions_for(finding, card_id, patient, knowledge)
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = "at-most-one"
    if settings.override_reasons:
        card["overrideReasons"] = list(settings.override_reasons_json)
    card["links"] = [
        {
            "label": _link_label(finding.rule, finding.rule_version),
            "url": settings.rule_docs(finding.rule),
            "type": "absolute",
        }
    ]
    return card


@functools.lru_cache(maxsize=1024)
def _source_label(label: str) -> str:
    return truncate(label, SOURCE_LABEL_MAX) or "TRD decision support"


@functools.lru_cache(maxsize=1024)
def _link_label(rule: str, version: str) -> str:
    return truncate(f"Rule {rule} v{version}", SUMMARY_MAX)


def notice_card(summary: str, detail: str, patient: str, settings: HookSettings) -> Json:
    """A card about the call itself (e.g. data the EHR could not give us), not about a finding."""
    return {
        "uuid": str(uuid.uuid5(CARD_NAMESPACE, f"{patient}|notice|{summary}")),
        "summary": truncate(summary, SUMMARY_MAX),
        "indicator": "info",
        "detail": _markdown_escape(detail),
        "source": {"label": "TRD decision support service"},
    }


def cards_for(
    findings: Iterable[Finding],
    patient: str,
    settings: HookSettings,
    catalog: RuleCatalog,
    knowledge: Knowledge | None = None,
) -> list[Json]:
    """Ordered by indicator (critical first), then rule and subject; one card per (patient, rule, subject)."""
    return [card for _, card in finding_cards(findings, patient, settings, catalog, knowledge)]


def finding_cards(
    findings: Iterable[Finding],
    patient: str,
    settings: HookSettings,
    catalog: RuleCatalog,
    knowledge: Knowledge | None = None,
) -> list[tuple[Finding, Json]]:
    """`cards_for` with the finding each card was made from (the first of those sharing its uuid)."""
    ordered = sorted(findings, key=lambda f: (INDICATOR_ORDER.get(f.indicator, 9), f.rule, f.subject or ""))
    seen: set[str] = set()
    cards: list[tuple[Finding, Json]] = []
    for finding in ordered:
        uid = card_uuid(patient, finding)
        if uid in seen:
            continue
        seen.add(uid)
        cards.append((finding, finding_card(finding, patient, settings, catalog, knowledge, uid)))
    return cards
