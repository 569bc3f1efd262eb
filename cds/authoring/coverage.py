"""Rule coverage over a case library: which rules never fired, which have no near-miss case, and which
conditions (tests) were never decisive, i.e. never both true and false on a fact of the pattern's type.

Condition coverage uses the reference evaluator's semantics (cds.engine.explain.walk) on each case's facts,
so it is the same whichever evaluator ran the cases."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cds.authoring.cases import CaseRun
from cds.engine.explain import describe_test, trace, walk
from cds.engine.runner import RuleEngine


@dataclass(frozen=True)
class Condition:
    rule: str
    pattern: int
    bind: str
    group: str  # all | any
    index: int
    text: str

    def label(self) -> str:
        return f"{self.rule}: {self.bind}.{self.text}" + (" (any)" if self.group == "any" else "")


@dataclass
class ConditionStat:
    true: int = 0
    false: int = 0

    @property
    def decisive(self) -> bool:
        return self.true > 0 and self.false > 0

    def verdict(self) -> str:
        if not self.true and not self.false:
            return "never evaluated"
        return "never true" if not self.true else "never false"


@dataclass
class Coverage:
    rules: dict[str, str]  # rule id -> stage
    fired_in: dict[str, list[str]] = field(default_factory=dict)
    near_miss_in: dict[str, list[str]] = field(default_factory=dict)
    conditions: dict[Condition, ConditionStat] = field(default_factory=dict)
    cases: int = 0

    def never_fired(self) -> list[str]:
        return [r for r in self.rules if not self.fired_in.get(r)]

    def without_near_miss(self) -> list[str]:
        return [r for r in self.rules if not self.near_miss_in.get(r)]

    def never_decisive(self) -> list[tuple[Condition, ConditionStat]]:
        return [(c, s) for c, s in self.conditions.items() if not s.decisive]

    @property
    def complete(self) -> bool:
        return not (self.never_fired() or self.without_near_miss() or self.never_decisive())


def measure(runs: Iterable[CaseRun], engine: RuleEngine) -> Coverage:
    cov = Coverage(rules={rid: s for s, rs in engine.stages.items() for rid in (r.id for r in rs.rules)})
    for rs in engine.stages.values():
        for rule in rs.rules:
            for i, p in enumerate(rule.when):
                for group, tests in (("all", p.all), ("any", p.any)):
                    for j, t in enumerate(tests):
                        cov.conditions[Condition(rule.id, i, p.bind, group, j, describe_test(t))] = ConditionStat()
    keys = {(c.rule, c.pattern, c.group, c.index): c for c in cov.conditions}
    for run in runs:
        if run.facts is None:
            continue
        cov.cases += 1
        for rid in run.fired:
            cov.fired_in.setdefault(rid, []).append(run.case.name)
        for rid in run.case.not_fired:
            if rid not in run.fired:
                cov.near_miss_in.setdefault(rid, []).append(run.case.name)
        traces = trace(engine, run.facts)
        for stage, rs in engine.stages.items():
            memory = traces[stage].memory if stage in traces else []
            for rule in rs.rules:
                for i, cand in walk(rule, memory):
                    for res in cand.results:
                        stat = cov.conditions[keys[(rule.id, i, res.group, res.index)]]
                        if res.passed:
                            stat.true += 1
                        else:
                            stat.false += 1
    return cov
