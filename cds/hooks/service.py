"""One hook call end to end: prefetch -> evaluation (through Evaluator only) -> the cards for this hook."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

from cds.engine.reload import RulesetManager
from cds.errors import InputError
from cds.evaluation import Evaluation
from cds.findings import Finding
from cds.hooks.cards import finding_cards, notice_card
from cds.hooks.discovery import ServiceSpec
from cds.hooks.feedback_store import IssuedCard
from cds.hooks.orders import OrderScope, order_scope
from cds.hooks.prefetch import PrefetchResolver
from cds.hooks.requests import HookRequest
from cds.hooks.rule_docs import RuleCatalog
from cds.hooks.settings import HookSettings
from cds.knowledge import Knowledge

log = logging.getLogger("cds.hooks.service")
Json = dict[str, Any]


@dataclass(frozen=True)
class HookAnswer:
    response: Json
    issued: tuple[IssuedCard, ...]


def _findings_for(
    spec: ServiceSpec, evaluation: Evaluation, scope: OrderScope, settings: HookSettings
) -> list[Finding]:
    if spec.order_scope == "none":
        return list(evaluation.findings)
    categories = set(settings.order_hook_categories)
    return [f for f in evaluation.findings if scope.refs.intersection(f.evidence) or f.category in categories]


class HookService:
    def __init__(
        self, rules: RulesetManager, prefetch: PrefetchResolver, settings: HookSettings, catalog: RuleCatalog
    ) -> None:
        self.rules = rules  # hot-reloadable: each request leases the ruleset in service
        self.prefetch = prefetch
        self.settings = settings
        self.catalog = catalog

    async def answer(self, spec: ServiceSpec, request: HookRequest) -> HookAnswer:
        scope = order_scope(spec, request.context, self.rules.current().knowledge)
        if spec.order_scope != "none" and not scope.relevant:
            return HookAnswer({"cards": []}, ())  # no order we have rules for: nothing to fetch or say
        data = await self.prefetch.resolve(spec, request)
        resources = list(data.data)
        if scope.draft_orders is not None:
            resources.append(scope.draft_orders)
        patient = request.patient_id
        today = date.today()  # the service is the edge: below it, `now` is always an argument
        findings: list[Finding] = []
        knowledge: Knowledge | None = None
        try:
            # CPU-bound and short: run inline. A thread would only add GIL hand-offs; workers scale with processes.
            with self.rules.lease() as evaluator:
                evaluation = evaluator.evaluate_resources(resources, today)
                knowledge = evaluator.knowledge
            findings = _findings_for(spec, evaluation, scope, self.settings)
        except InputError:
            log.info("nothing usable in the record for hookInstance %s", request.hook_instance)
        shown = finding_cards(findings, patient, self.settings, self.catalog, knowledge)
        cards = [card for _, card in shown]
        if data.problems:
            keys = ", ".join(sorted(data.problems))
            detail = "\n".join(f"- `{key}`: {problem}" for key, problem in sorted(data.problems.items()))
            cards.append(
                notice_card(
                    f"Part of the record could not be read ({keys}); the review may be incomplete",
                    detail,
                    patient,
                    self.settings,
                )
            )
        issued = tuple(
            IssuedCard(
                card_uuid=card["uuid"], rule=f.rule, rule_version=f.rule_version, code=f.code, indicator=f.indicator
            )
            for f, card in shown
        )
        return HookAnswer({"cards": cards}, issued)
