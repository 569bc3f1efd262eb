"""What every evaluator shares: the compiled stage, activations, and how a derived fact is built."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple, Protocol

from cds.engine.ir import Module, Rule, Scalar

FactView = dict[str, Scalar]


class Activation(NamedTuple):
    """One rule firing: the rule and the id of the fact bound to each of its patterns."""

    rule: str
    bindings: tuple[tuple[str, str], ...]


@dataclass
class StageResult:
    activations: list[Activation] = field(default_factory=list)
    derived: list[FactView] = field(default_factory=list)


@dataclass(frozen=True)
class StageRules:
    """All active rules of one stage, in authoring order (module file order, then rule order)."""

    stage: str
    rules: tuple[Rule, ...]
    modules: tuple[str, ...]

    @classmethod
    def from_modules(cls, stage: str, modules: Sequence[Module]) -> StageRules:
        mods = [m for m in modules if m.stage == stage]
        rules = tuple(r for m in mods for r in m.rules if r.status == "active")
        return cls(stage=stage, rules=rules, modules=tuple(m.module for m in mods))

    @cached_property
    def order(self) -> dict[str, int]:
        return {r.id: i for i, r in enumerate(self.rules)}

    @property
    def derived_types(self) -> set[str]:
        return {str(r.derive["type"]) for r in self.rules if r.derive}


class Evaluator(Protocol):
    name: str

    def run(self, facts: Sequence[FactView]) -> StageResult: ...


DeriveItems = tuple[tuple[str, Any, tuple[str, str] | None], ...]


def derive_items(derive: dict[str, Scalar]) -> DeriveItems:
    """A rule's `derive` as (key, literal, None) and (key, None, (bind, field)) for `=bind.field` values."""
    items: list[tuple[str, Any, tuple[str, str] | None]] = []
    for key, value in derive.items():
        if isinstance(value, str) and value.startswith("="):
            bind, _, fname = value[1:].partition(".")
            items.append((key, None, (bind, fname)))
        else:
            items.append((key, value, None))
    return tuple(items)


def build_derived(fact_id: str, items: DeriveItems, bound: dict[str, dict[str, Any]]) -> FactView:
    """The derived fact: literal values, and bound facts' values where they are present."""
    fact: FactView = {"id": fact_id}
    for key, value, ref in items:
        if ref is None:
            fact[key] = value
            continue
        resolved = bound.get(ref[0], {}).get(ref[1])
        if resolved is not None:
            fact[key] = resolved
    return fact


def derived_id(rule_id: str, fact_ids: Iterable[str]) -> str:
    """The id of the fact a rule derives for one activation: it names the rule and the bound facts, so the same
    activation always derives the same fact and two activations never derive identical facts."""
    return f"{rule_id}({','.join(fact_ids)})"


def derive_fact(rule: Rule, bound: dict[str, dict[str, Any]]) -> FactView:
    """The fact a rule derives for one activation (see derived_id)."""
    assert rule.derive is not None
    ids = [str(bound[p.bind]["id"]) for p in rule.patterns]
    return build_derived(derived_id(rule.id, ids), derive_items(rule.derive), bound)


def sort_activations(result: StageResult, order: dict[str, int]) -> StageResult:
    """Activations in rule order (``StageRules.order``, worked out once per evaluator), then by bound facts."""
    result.activations.sort(key=lambda a: (order[a.rule], a.bindings))
    result.derived.sort(key=lambda f: str(f["id"]))
    return result
