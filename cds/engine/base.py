"""What every evaluator shares: the compiled stage, activations, and how a derived fact is built."""

from __future__ import annotations

from collections.abc import Sequence
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


def derive_fact(rule: Rule, bound: dict[str, dict[str, Any]]) -> FactView:
    """The fact a rule derives for one activation. Its id names the rule and the bound facts, so the same
    activation always derives the same fact and two activations never derive identical facts."""
    assert rule.derive is not None
    ids = ",".join(str(bound[p.bind]["id"]) for p in rule.patterns)
    fact: FactView = {"id": f"{rule.id}({ids})"}
    for key, value in rule.derive.items():
        if isinstance(value, str) and value.startswith("="):
            bind, _, fname = value[1:].partition(".")
            resolved = bound.get(bind, {}).get(fname)
            if resolved is None:
                continue
            fact[key] = resolved
        else:
            fact[key] = value
    return fact


def sort_activations(result: StageResult, rules: StageRules) -> StageResult:
    order = rules.order
    result.activations.sort(key=lambda a: (order[a.rule], a.bindings))
    result.derived.sort(key=lambda f: str(f["id"]))
    return result
