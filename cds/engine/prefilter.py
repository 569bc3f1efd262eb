"""Which facts no rule of a stage can match, decided in Python before they reach durable_rules.

Each fact the C engine receives costs a JSON round trip, a parse and a walk of its alpha network, whether a rule
ends up binding it or not; most laboratory results, for example, pass no screening rule's own tests. A fact is
sent only if, for some pattern of its type, none of the pattern's tests against literal values rules it out.

A test rules a fact out only where the outcome is certain in durable_rules as well as in the reference evaluator
(measured over every operator and kind of value: tests/engine/test_prefilter.py):

* a field the fact lacks fails every test but `missing`; a field it has, null or not, fails `missing`, and a
  null one fails every comparison but `!=` and `not_in`;
* text against text: `==`, `!=`, `in`, `not_in` (no ordering: the engine compares bytes);
* numbers against numbers (not booleans, which the engine compares as numbers and the reference does not): all
  six comparisons, `in`, `not_in`; an integer only within ±2^53, where it is exact as a double;
* a boolean against a boolean: `==`, `!=`.

Anything else (a test against another fact's field or an expression; the value of a test of mixed kinds, of
text ordering, or against lists or objects) is left to the engine: the fact is sent.
"""

from __future__ import annotations

import math
from typing import Any, Final

from cds.engine.ir import Pattern, Test

_EXACT: Final = 2**53  # integers beyond it lose precision as doubles

# What a check does: one code per kind of decision.
_EXISTS: Final = 0
_MISSING: Final = 1
_TEXT_IN: Final = 2  # == or in, text
_TEXT_NOT_IN: Final = 3  # != or not_in, text
_NUMBER_IN: Final = 4  # == or in, numbers
_NUMBER_NOT_IN: Final = 5  # != or not_in, numbers
_LT: Final = 6
_LE: Final = 7
_GT: Final = 8
_GE: Final = 9
_BOOL_EQ: Final = 10
_BOOL_NE: Final = 11
_PRESENT: Final = 12  # only whether the field is there (and null) is decided; `flag`: the test is positive
_ORDER: Final = {"<": _LT, "<=": _LE, ">": _GT, ">=": _GE}
# Null fails these in both evaluators; `!=` and `not_in` differ (the reference passes null, the engine does not).
_POSITIVE: Final = frozenset({_TEXT_IN, _NUMBER_IN, _LT, _LE, _GT, _GE, _BOOL_EQ})


def _number(value: object) -> bool:
    """A JSON number that compares the same way in Python and in the engine."""
    if type(value) is float:
        return True
    return type(value) is int and -_EXACT <= value <= _EXACT


class Check:
    """One test against a literal, reduced to what decides it."""

    def __init__(self, name: str, kind: int, texts: frozenset[str], numbers: tuple[float, ...], flag: bool) -> None:
        self.name = name
        self.kind = kind
        self.texts = texts
        self.numbers = numbers
        self.flag = flag

    def fails(self, fact: dict[str, Any]) -> bool:
        """Whether the fact certainly fails the test (False when in doubt)."""
        if self.name not in fact:
            return self.kind != _MISSING
        kind = self.kind
        if kind == _EXISTS:
            return False
        if kind == _MISSING:
            return True
        value = fact[self.name]
        if value is None:
            return kind in _POSITIVE or (kind == _PRESENT and self.flag)
        if kind == _PRESENT:
            return False
        if kind <= _TEXT_NOT_IN:
            if type(value) is not str:
                return False
            return (value in self.texts) == (kind == _TEXT_NOT_IN)
        if kind in (_BOOL_EQ, _BOOL_NE):
            if type(value) is not bool:
                return False
            return (value == self.flag) == (kind == _BOOL_NE)
        if not _number(value):
            return False
        v = float(value)
        if kind == _NUMBER_IN:
            return v not in self.numbers
        if kind == _NUMBER_NOT_IN:
            return v in self.numbers
        bound = self.numbers[0]
        if kind == _LT:
            return not v < bound
        if kind == _LE:
            return not v <= bound
        if kind == _GT:
            return not v > bound
        return not v >= bound


def check_of(test: Test) -> Check | None:
    """The test as a Check, or None when it is left to the engine."""
    if test.op == "exists":
        return Check(test.field, _EXISTS, frozenset(), (), False)
    if test.op == "missing":
        return Check(test.field, _MISSING, frozenset(), (), False)
    if test.ref is not None or test.expr is not None:
        return None
    values = test.value if isinstance(test.value, list) else [test.value]
    negated = test.op in ("!=", "not_in")
    if all(type(v) is str for v in values) and test.op not in _ORDER:
        kind = _TEXT_NOT_IN if negated else _TEXT_IN
        return Check(test.field, kind, frozenset(str(v) for v in values), (), False)
    if all(_number(v) and not math.isnan(float(v)) for v in values):  # type: ignore[arg-type]
        numbers = tuple(float(v) for v in values)  # type: ignore[arg-type]
        if test.op in _ORDER:
            return Check(test.field, _ORDER[test.op], frozenset(), numbers, False)
        return Check(test.field, _NUMBER_NOT_IN if negated else _NUMBER_IN, frozenset(), numbers, False)
    if len(values) == 1 and type(values[0]) is bool and test.op in ("==", "!="):
        return Check(test.field, _BOOL_NE if negated else _BOOL_EQ, frozenset(), (), bool(values[0]))
    return Check(test.field, _PRESENT, frozenset(), (), not negated)


class PatternScreen:
    """The decidable tests of one pattern: all of `all`'s, and `any`'s when every one of them is decidable."""

    def __init__(self, pattern: Pattern) -> None:
        checks = [check_of(t) for t in pattern.all]
        self.all: tuple[Check, ...] = tuple(c for c in checks if c is not None)
        alternatives = [check_of(t) for t in pattern.any]
        self.any: tuple[Check, ...] = (
            tuple(c for c in alternatives if c is not None)
            if alternatives and all(c is not None for c in alternatives)
            else ()
        )

    def may_match(self, fact: dict[str, Any]) -> bool:
        for check in self.all:
            if check.fails(fact):
                return False
        if self.any:
            return any(not check.fails(fact) for check in self.any)
        return True


class Prefilter:
    """Per fact type, the screens of the patterns of that type in one stage's rules."""

    def __init__(self, patterns: list[Pattern]) -> None:
        screens: dict[str, list[PatternScreen]] = {}
        for p in patterns:
            screens.setdefault(p.type, []).append(PatternScreen(p))
        self.screens = {t: tuple(s) for t, s in screens.items()}

    def may_match(self, fact: dict[str, Any]) -> bool:
        """Whether some pattern could match the fact: False only when every pattern of its type rules it out (or
        no pattern reads its type)."""
        screens = self.screens.get(str(fact["type"]))
        if screens is None:
            return False
        return any(screen.may_match(fact) for screen in screens)
