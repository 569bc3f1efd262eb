"""Which draft orders an order-select / order-sign call is about, and whether they concern us.

The FHIR layer reads the draftOrders Bundle and recognises the drugs (cds.fhir); this module only picks the
orders in scope (order-select: `selections`; order-sign: every draft order) and asks whether any of them is
an antidepressant, augmenting agent (lithium, antipsychotic, ...), rapid-acting agent (esketamine, ketamine)
or MAOI, i.e. a drug with a role in the catalog other than "other".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cds.errors import InputError
from cds.facts.models import DataIssue
from cds.fhir.elements import resource_ref
from cds.fhir.index import ResourceIndex
from cds.fhir.medications import MedicationResolver
from cds.fhir.reader import read_resources
from cds.hooks.discovery import ServiceSpec
from cds.hooks.errors import BadRequest
from cds.knowledge import Knowledge

Json = dict[str, Any]
RELEVANT_ROLES = frozenset({"antidepressant", "augmenting_agent", "rapid_acting"})
ORDER_TYPES = frozenset({"MedicationRequest", "MedicationOrder"})


@dataclass(frozen=True)
class OrderScope:
    refs: frozenset[str]  # the orders the call is about, e.g. "MedicationRequest/123"
    relevant: tuple[str, ...]  # ingredients among them that our rules cover
    draft_orders: Json | None  # the draftOrders Bundle, evaluated with the record


def order_scope(spec: ServiceSpec, context: dict[str, Any], knowledge: Knowledge) -> OrderScope:
    if spec.order_scope == "none":
        return OrderScope(frozenset(), (), None)
    bundle: Json = context["draftOrders"]
    try:
        raw = read_resources([bundle], where="draftOrders")
    except InputError:
        raw = None
    resources = raw.resources if raw is not None else []
    by_ref = {ref: r for r in resources if (ref := resource_ref(r)) is not None}
    if spec.order_scope == "selections":
        selections = [str(s) for s in context["selections"]]
        unknown = [s for s in selections if s not in by_ref]
        if unknown:
            raise BadRequest(f"context.selections {unknown} are not in context.draftOrders")
        in_scope = {s: by_ref[s] for s in selections}
    else:
        in_scope = by_ref
    relevant: list[str] = []
    if raw is not None:
        resolver = MedicationResolver(knowledge, ResourceIndex(raw))
        issues: list[DataIssue] = []
        for ref, resource in in_scope.items():
            if resource.get("resourceType") not in ORDER_TYPES:
                continue
            for component in resolver.resolve(resource, issues, ref).components:
                if component.drug.role in RELEVANT_ROLES and component.drug.ingredient not in relevant:
                    relevant.append(component.drug.ingredient)
    return OrderScope(frozenset(in_scope), tuple(relevant), bundle)
