"""The prefilter leaves out of durable_rules only facts that neither the engine nor the reference would match.

Every operator is tried against literals of every kind and facts holding every kind of value (and none): where
a Check says the fact fails, the engine (run with nothing left out) and the reference evaluator both must
leave it unmatched. And where both evaluators agree on a fact of the same kind as the literal, the Check must
decide it, so the prefilter cannot pass these tests by never leaving anything out.
"""

from __future__ import annotations

import json
import math
from typing import Any

import durable_rules_engine
import pytest

from cds.engine.base import StageRules
from cds.engine.durable import _ID, DurableEvaluator
from cds.engine.ir import Module, Pattern
from cds.engine.ir import Test as RuleTest
from cds.engine.prefilter import Prefilter, check_of
from cds.engine.reference import ReferenceEvaluator

OPS = ["==", "!=", "<", "<=", ">", ">=", "in", "not_in", "exists", "missing"]
LITERALS: list[Any] = ["a", "é", 1, 2.5, 0, -1, True, False, 1.0, 2**53]
ABSENT = object()
VALUES: list[Any] = [
    ABSENT,
    "a",
    "b",
    "é",
    "",
    "1",
    1,
    1.0,
    2.5,
    3,
    0,
    -0.0,
    -1,
    True,
    False,
    math.nan,
    math.inf,
    -math.inf,
    2**60,
    2**53,
    2**53 + 1,
    1e300,
]


def _stage(test: dict[str, Any]) -> StageRules:
    rule = {
        "id": "r",
        "version": "1",
        "title": "r",
        "source": {"label": "test"},
        "when": [{"bind": "x", "type": "t", "all": [test]}],
        "finding": {"code": "x", "category": "t", "indicator": "info", "summary": "s"},
    }
    module = Module.model_validate({"module": "t", "version": "1", "stage": "classify", "title": "t", "rules": [rule]})
    return StageRules.from_modules("classify", [module])


def _tests() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for op in OPS:
        if op in ("exists", "missing"):
            out.append({"field": "f", "op": op})
        elif op in ("in", "not_in"):
            out += [{"field": "f", "op": op, "value": [lit, "zz"]} for lit in LITERALS]
            out += [{"field": "f", "op": op, "value": [lit, 7]} for lit in LITERALS if type(lit) in (int, float)]
        else:
            out += [{"field": "f", "op": op, "value": lit} for lit in LITERALS]
    return out


def _same_kind(value: Any, literal: Any) -> bool:
    if type(value) is bool or type(literal) is bool:
        return type(value) is type(literal)
    numbers = (int, float)
    return (type(value) in numbers and type(literal) in numbers) or type(value) is type(literal)


@pytest.mark.parametrize("test", _tests(), ids=lambda t: f"{t['op']}:{t.get('value')!r}")
def test_a_fact_left_out_is_matched_by_neither_evaluator(test: dict[str, Any]) -> None:
    rules = _stage(test)
    check = check_of(RuleTest.model_validate(test))
    engine = DurableEvaluator(rules)
    engine._prefilter = Prefilter([Pattern(bind="x", type="t")])  # sends every fact: the engine's own answer
    reference = ReferenceEvaluator(rules)
    decided = 0
    for value in VALUES:
        fact: dict[str, Any] = {"type": "t", "id": "t1"}
        if value is not ABSENT:
            fact["f"] = value
        by_engine = len(engine.run([fact]).activations)
        by_reference = len(reference.run([fact]).activations)
        if check is not None and check.fails(fact):
            decided += 1
            assert by_engine == 0 and by_reference == 0, (test, value)
        literals = test["value"] if isinstance(test.get("value"), list) else [test.get("value")]
        big = type(value) is int and abs(value) > 2**53
        clear = value is ABSENT or (
            not big
            and not (isinstance(value, float) and not math.isfinite(value))
            and all(_same_kind(value, lit) for lit in literals)
            and test["op"] in ("==", "!=", "in", "not_in", "exists", "missing")
        )
        if clear and by_engine == 0 and by_reference == 0:
            assert check is not None and check.fails(fact), (test, value)
    assert check is None or decided > 0


def test_ordering_of_text_and_mixed_kinds_are_left_to_the_engine() -> None:
    assert check_of(RuleTest(field="f", op="<", ref="other.f")) is None
    for test in (RuleTest(field="f", op="<", value="b"), RuleTest(field="f", op="in", value=["a", 1])):
        check = check_of(test)
        assert check is not None and check.fails({}) and check.fails({"f": None})  # absence and null: decided
        assert not any(check.fails({"f": v}) for v in ("a", "c", 1, 2, True))  # values: left to the engine
    lt = check_of(RuleTest(field="f", op="<", value=5))
    assert lt is not None
    assert not lt.fails({"f": "3"}) and not lt.fails({"f": True}) and not lt.fails({"f": [1]})
    assert lt.fails({"f": 7}) and lt.fails({}) and lt.fails({"f": None})
    ne = check_of(RuleTest(field="f", op="!=", value=5))
    assert ne is not None and not ne.fails({"f": None})  # the evaluators differ on null: left to the engine


def test_facts_ruled_out_by_a_number_or_an_any_group_are_not_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pattern's `any` group rules a fact out only when every alternative does; a number test like a text one."""
    rules = _stage({"field": "v", "op": ">", "value": 10})
    pattern = rules.rules[0].when[0]
    either = (RuleTest(field="kind", op="==", value="tsh"), RuleTest(field="kind", op="==", value="ft4"))
    rule = rules.rules[0].model_copy(update={"when": (pattern.model_copy(update={"any": either}),)})
    rules = StageRules(stage="classify", rules=(rule,), modules=rules.modules)
    sent: list[str] = []
    assert_fact = durable_rules_engine.assert_fact

    def spy(handle: int, payload: str) -> Any:
        sent.append(payload)
        return assert_fact(handle, payload)

    monkeypatch.setattr(durable_rules_engine, "assert_fact", spy)
    facts = [
        {"type": "t", "id": "low", "v": 5, "kind": "tsh"},
        {"type": "t", "id": "high", "v": 15, "kind": "ft4"},
        {"type": "t", "id": "other", "v": 15, "kind": "sodium"},
        {"type": "t", "id": "unknown", "kind": "tsh"},
        {"type": "u", "id": "unread", "v": 15},
    ]
    activations = DurableEvaluator(rules).run(facts).activations
    assert activations == ReferenceEvaluator(rules).run(facts).activations
    assert [a.bindings for a in activations] == [(("x", "high"),)]
    assert [json.loads(p)[_ID] for p in sent] == ["high"]


def test_a_type_no_pattern_reads_is_never_sent() -> None:
    prefilter = Prefilter([])
    assert not prefilter.may_match({"type": "t", "id": "t1"})
