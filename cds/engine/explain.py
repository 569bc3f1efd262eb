"""Why a rule fired or did not, for one patient, with the reference evaluator's semantics.

`trace()` runs the stages with the plain-Python evaluator and keeps every stage's working memory (input facts
and derived facts). `explain()` then answers for one rule: which facts it bound and the FHIR resources behind
them, or, pattern by pattern, the candidate facts of the pattern's type and which test failed with the value
seen. `test_outcomes()` is the same walk without the narrative, used for condition coverage.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cds.engine.base import Activation, FactView, StageResult
from cds.engine.ir import Expr, Pattern, Rule, Test
from cds.engine.reference import ReferenceEvaluator, passes
from cds.engine.runner import RuleEngine
from cds.engine.views import stage_one, trd_summary
from cds.facts.models import FactSet

MAX_PARTIAL_BINDINGS = 64  # cross-fact patterns: how many bindings of the earlier patterns are explored


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


MISSING: Any = _Missing()


@dataclass
class StageTrace:
    stage: str
    inputs: list[FactView]
    result: StageResult
    evidence: dict[str, tuple[str, ...]]

    @property
    def memory(self) -> list[FactView]:
        return [*self.inputs, *self.result.derived]

    def fact(self, fact_id: str) -> FactView | None:
        return next((f for f in self.memory if str(f["id"]) == fact_id), None)

    def evidence_of(self, fact_id: str) -> tuple[str, ...]:
        """FHIR references behind a fact; a derived fact inherits those of the facts it was derived from."""
        if fact_id in self.evidence:
            return self.evidence[fact_id]
        _, sep, inner = fact_id.partition("(")
        if not sep or not inner.endswith(")"):
            return ()
        out: list[str] = []
        for part in _split_ids(inner[:-1]):
            out += self.evidence_of(part)
        return tuple(dict.fromkeys(out))


def _split_ids(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += (ch == "(") - (ch == ")")
        cur += ch
    return [*parts, cur] if cur else parts


class _Recorder:
    """Wraps a stage's evaluator and keeps what it was given and what it returned."""

    def __init__(self, inner: ReferenceEvaluator) -> None:
        self.inner = inner
        self.name = inner.name
        self.inputs: list[FactView] = []
        self.result = StageResult()

    def run(self, facts: Sequence[FactView]) -> StageResult:
        self.inputs = list(facts)
        self.result = self.inner.run(facts)
        return self.result


def trace(engine: RuleEngine, facts: FactSet) -> dict[str, StageTrace]:
    """Run the engine's own pipeline with reference evaluators that record their inputs and results in place of
    its stage evaluators, so the trace follows cds.engine.runner whatever stages it has."""
    recorders = {s: _Recorder(ReferenceEvaluator(rules)) for s, rules in engine.stages.items()}
    engine.evaluate(facts, recorders)
    evidence: dict[str, tuple[str, ...]] = dict(stage_one(facts).evidence)
    with contextlib.suppress(Exception):  # evidence is a courtesy; the trace does not depend on it
        evidence.update(trd_summary(facts, recorders["classify"].result).evidence)
    return {s: StageTrace(s, r.inputs, r.result, evidence) for s, r in recorders.items()}


# ---------------------------------------------------------------------------------- test outcomes


@dataclass(frozen=True)
class TestResult:
    group: str  # "all" or "any"
    index: int
    test: Test
    passed: bool
    seen: Any
    expected: Any


def rhs_value(test: Test, fact: Mapping[str, Any], bound: Mapping[str, Mapping[str, Any]]) -> Any:
    def operand(x: Any) -> Any:
        if isinstance(x, Expr):
            left, right = operand(x.left), operand(x.right)
            numeric = (int, float)
            if not (isinstance(left, numeric) and isinstance(right, numeric)) or isinstance(left, bool):
                return MISSING
            if x.op == "div":
                return left / right if right else MISSING
            return {"add": left + right, "sub": left - right, "mul": left * right}[x.op]
        if isinstance(x, str):
            bind, dot, fname = x.partition(".")
            return bound.get(bind, {}).get(fname, MISSING) if dot else fact.get(x, MISSING)
        return x

    if test.op in ("exists", "missing"):
        return None
    if test.expr is not None:
        return operand(test.expr)
    if test.ref is not None:
        return operand(test.ref)
    return test.value


def evaluate_tests(pattern: Pattern, fact: FactView, bound: Mapping[str, Mapping[str, Any]]) -> list[TestResult]:
    out = []
    for group, tests in (("all", pattern.all), ("any", pattern.any)):
        for i, t in enumerate(tests):
            out.append(
                TestResult(
                    group=group,
                    index=i,
                    test=t,
                    passed=passes(t, dict(fact), {k: dict(v) for k, v in bound.items()}),
                    seen=fact.get(t.field, MISSING),
                    expected=rhs_value(t, fact, bound),
                )
            )
    return out


def pattern_matched(results: list[TestResult]) -> bool:
    any_results = [r for r in results if r.group == "any"]
    return all(r.passed for r in results if r.group == "all") and (
        not any_results or any(r.passed for r in any_results)
    )


@dataclass
class Candidate:
    fact: FactView
    prior: dict[str, str]  # bind -> fact id of the earlier patterns' facts this candidate was tried with
    results: list[TestResult]

    @property
    def matched(self) -> bool:
        return pattern_matched(self.results)


def walk(rule: Rule, memory: list[FactView]) -> Iterator[tuple[int, Candidate]]:
    """Every (pattern index, candidate) the reference evaluator considers, with each test's outcome.

    Candidates for pattern i are tried with every binding of patterns 0..i-1 that matched (up to
    MAX_PARTIAL_BINDINGS), so cross-fact tests are judged with the values they would really see."""
    by_type: dict[str, list[FactView]] = {}
    for f in memory:
        by_type.setdefault(str(f.get("type")), []).append(f)
    partial: list[dict[str, FactView]] = [{}]
    for i, pattern in enumerate(rule.when):
        next_partial: list[dict[str, FactView]] = []
        for bound in partial:
            for fact in by_type.get(pattern.type, []):
                if any(fact is b for b in bound.values()):
                    continue
                cand = Candidate(
                    fact=fact,
                    prior={k: str(v["id"]) for k, v in bound.items()},
                    results=evaluate_tests(pattern, fact, bound),
                )
                yield i, cand
                if cand.matched and len(next_partial) < MAX_PARTIAL_BINDINGS:
                    next_partial.append({**bound, pattern.bind: fact})
        partial = next_partial


# ---------------------------------------------------------------------------------- explanation


@dataclass
class BoundFact:
    bind: str
    fact: FactView
    evidence: tuple[str, ...]


@dataclass
class PatternReport:
    index: int
    pattern: Pattern
    candidates: list[Candidate] = field(default_factory=list)
    reached: bool = True  # False when an earlier pattern matched no fact, so this one was never tried


@dataclass
class Explanation:
    rule: Rule
    stage: str
    fired: bool
    activations: list[list[BoundFact]]
    patterns: list[PatternReport]


def explain(rule: Rule, stage: StageTrace) -> Explanation:
    acts: list[Activation] = [a for a in stage.result.activations if a.rule == rule.id]
    activations = []
    for act in acts:
        bound = []
        for bind, fid in act.bindings:
            bound.append(BoundFact(bind=bind, fact=stage.fact(fid) or {"id": fid}, evidence=stage.evidence_of(fid)))
        activations.append(bound)
    reports = [PatternReport(index=i, pattern=p) for i, p in enumerate(rule.when)]
    for i, cand in walk(rule, stage.memory):
        reports[i].candidates.append(cand)
    for i, rep in enumerate(reports):
        if i > 0 and not any(c.matched for c in reports[i - 1].candidates):
            rep.reached = False
    return Explanation(rule=rule, stage=stage.stage, fired=bool(acts), activations=activations, patterns=reports)


def describe_test(test: Test) -> str:
    if test.op in ("exists", "missing"):
        return f"{test.field} {test.op}"
    rhs: Any = test.ref if test.ref is not None else fmt(test.value)
    if test.expr is not None:
        rhs = describe_expr(test.expr)
    return f"{test.field} {test.op} {rhs}"


def describe_expr(e: Expr) -> str:
    sym = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[e.op]

    def side(x: Any) -> str:
        return f"({describe_expr(x)})" if isinstance(x, Expr) else str(x)

    return f"{side(e.left)} {sym} {side(e.right)}"


def fmt(value: Any) -> str:
    if value is MISSING:
        return "(missing)"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
