"""Plain-Python evaluator of the rule IR: the oracle the durable_rules adapter is checked against.

Semantics: forward chaining to a fixpoint; each (rule, bound facts) fires once; a test on a missing field
is false (except `missing`); one fact never binds to two patterns of the same rule.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from cds.engine.base import Activation, FactView, StageResult, StageRules, derive_fact, sort_activations
from cds.engine.ir import Expr, Pattern, Rule, Test

_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ARITH: dict[str, Callable[[float, float], float]] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
}
_MISSING = object()


def _operand(x: Any, fact: dict[str, Any], bound: dict[str, dict[str, Any]]) -> Any:
    if isinstance(x, Expr):
        return _expr(x, fact, bound)
    if isinstance(x, str):
        bind, dot, fname = x.partition(".")
        if dot:
            return bound.get(bind, {}).get(fname, _MISSING)
        return fact.get(x, _MISSING)
    return x


def _expr(e: Expr, fact: dict[str, Any], bound: dict[str, dict[str, Any]]) -> Any:
    left, right = _operand(e.left, fact, bound), _operand(e.right, fact, bound)
    if left is _MISSING or right is _MISSING or isinstance(left, str | bool) or isinstance(right, str | bool):
        return _MISSING
    try:
        return _ARITH[e.op](left, right)
    except ZeroDivisionError:
        return _MISSING


def _same_kind(a: Any, b: Any) -> bool:
    numeric = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    return (isinstance(a, numeric) and isinstance(b, numeric)) or type(a) is type(b)


def passes(test: Test, fact: dict[str, Any], bound: dict[str, dict[str, Any]]) -> bool:
    value = fact.get(test.field, _MISSING)
    if test.op == "exists":
        return value is not _MISSING
    if test.op == "missing":
        return value is _MISSING
    if value is _MISSING:
        return False
    if test.op in ("in", "not_in"):
        assert isinstance(test.value, list)
        hit = any(_same_kind(value, v) and value == v for v in test.value)
        return hit if test.op == "in" else not hit
    if test.expr is not None:
        rhs = _expr(test.expr, fact, bound)
    elif test.ref is not None:
        rhs = _operand(test.ref, fact, bound)
    else:
        rhs = test.value
    if rhs is _MISSING or not _same_kind(value, rhs):
        return False
    return bool(_CMP[test.op](value, rhs))


def matches(p: Pattern, fact: dict[str, Any], bound: dict[str, dict[str, Any]]) -> bool:
    if fact.get("type") != p.type:
        return False
    if not all(passes(t, fact, bound) for t in p.all):
        return False
    return not p.any or any(passes(t, fact, bound) for t in p.any)


class ReferenceEvaluator:
    name = "reference"

    def __init__(self, rules: StageRules) -> None:
        self.rules = rules
        self._order = rules.order

    def run(self, facts: Sequence[FactView]) -> StageResult:
        memory: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for f in facts:
            memory[str(f["type"])].append(dict(f))
        fired: set[Activation] = set()
        result = StageResult()
        changed = True
        while changed:
            changed = False
            for rule in sorted(self.rules.rules, key=lambda r: r.pri):
                for bound in list(self._bindings(rule, memory)):
                    act = Activation(rule.id, tuple((p.bind, str(bound[p.bind]["id"])) for p in rule.patterns))
                    if act in fired:
                        continue
                    fired.add(act)
                    result.activations.append(act)
                    if rule.derive is not None:
                        fact = derive_fact(rule, bound)
                        memory[str(fact["type"])].append(dict(fact))
                        result.derived.append(fact)
                        changed = True
        return sort_activations(result, self._order)

    def _bindings(self, rule: Rule, memory: dict[str, list[dict[str, Any]]]) -> Iterator[dict[str, dict[str, Any]]]:
        def walk(i: int, bound: dict[str, dict[str, Any]]) -> Iterator[dict[str, dict[str, Any]]]:
            if i == len(rule.when):
                yield dict(bound)
                return
            pattern = rule.when[i]
            for fact in memory.get(pattern.type, []):
                if any(fact is b for b in bound.values()):
                    continue
                if matches(pattern, fact, bound):
                    bound[pattern.bind] = fact
                    yield from walk(i + 1, bound)
                    del bound[pattern.bind]

        yield from walk(0, {})
