"""The durable_rules adapter neutralises each measured defect; each test here fails without its work-around."""

from __future__ import annotations

import json
import re
from typing import Any

import durable_rules_engine
import orjson
import pytest

from cds.engine.base import StageRules
from cds.engine.durable import _ID, DurableEvaluator, _sid_pool, engine_json, fnv1a_32
from cds.engine.ir import Module
from cds.engine.reference import ReferenceEvaluator
from cds.errors import EngineError


def stage(*rules: dict[str, Any]) -> StageRules:
    module = Module.model_validate(
        {
            "module": "t",
            "version": "1",
            "stage": "classify",
            "title": "t",
            "rules": [{"version": "1", "title": r["id"], "source": {"label": "test"}, **r} for r in rules],
        }
    )
    return StageRules.from_modules("classify", [module])


def both(rules: StageRules, facts: list[dict[str, Any]]) -> list[Any]:
    got_ref = ReferenceEvaluator(rules).run(facts).activations
    got_dr = DurableEvaluator(rules).run(facts).activations
    assert got_dr == got_ref
    return got_dr


VERDICTS = [{"type": "verdict", "id": f"v{i}", "trial": f"trial-{i}", "adequacy": "adequate"} for i in (1, 2)]
TRIALS = [{"type": "trial", "id": f"trial-{i}", "outcome": "nonresponse", "pct": 10.0} for i in (1, 2)]
JOIN = {
    "id": "join",
    "when": [
        {
            "bind": "verdict",
            "type": "verdict",
            "all": [{"field": "adequacy", "op": "==", "value": "adequate"}],
        },
        {
            "bind": "trial",
            "type": "trial",
            "all": [
                {"field": "outcome", "op": "in", "value": ["nonresponse", "partial_response"]},
                {"field": "pct", "op": "<", "value": 50},
                {"field": "id", "op": "==", "ref": "verdict.trial"},
            ],
        },
    ],
    "finding": {"code": "x", "category": "t", "indicator": "info", "summary": "s"},
}


@pytest.mark.parametrize("order", ["verdicts-first", "trials-first"])
def test_join_with_compound_test_and_id_matches_only_pairs(order: str) -> None:
    """Raw durable_rules fires this join for all 4 pairs (compound `in` before the join) or for none (join
    on `id` when trials arrive first). The adapter reorders tests and renames `id`."""
    facts = VERDICTS + TRIALS if order == "verdicts-first" else TRIALS + VERDICTS
    acts = both(stage(JOIN), facts)
    assert [dict(a.bindings) for a in acts] == [
        {"verdict": "v1", "trial": "trial-1"},
        {"verdict": "v2", "trial": "trial-2"},
    ]


def test_join_on_derived_fact() -> None:
    derive = {
        "id": "derive",
        "when": [{"bind": "trial", "type": "trial"}],
        "derive": {"type": "verdict", "trial": "=trial.id", "adequacy": "adequate"},
    }
    acts = both(stage(derive, JOIN), TRIALS)
    assert sum(a.rule == "join" for a in acts) == 2


def test_negation_is_refused_with_a_reason() -> None:
    """durable_rules' none() misfires in one assertion order and aborts the process in the other."""
    rule = {
        "id": "no-tsh",
        "when": [{"bind": "sym", "type": "sym"}, {"not": {"type": "lab"}}],
        "finding": {"code": "x", "category": "t", "indicator": "info", "summary": "s"},
    }
    with pytest.raises(ValueError, match="negated patterns"):
        stage(rule)


def test_identical_content_with_distinct_ids_both_fire() -> None:
    rule = {
        "id": "r",
        "when": [{"bind": "a", "type": "a"}],
        "finding": {"code": "x", "category": "t", "indicator": "info", "summary": "s"},
    }
    facts = [{"type": "a", "id": "a1", "v": 1}, {"type": "a", "id": "a2", "v": 1}]
    assert len(both(stage(rule), facts)) == 2


def test_sessions_are_deleted_and_sids_returned() -> None:
    rule = {
        "id": "r",
        "when": [{"bind": "a", "type": "a"}],
        "finding": {"code": "x", "category": "t", "indicator": "info", "summary": "s"},
    }
    ev = DurableEvaluator(stage(rule))
    pool = list(ev._pool)
    for _ in range(2000):  # far more than the engine's 1,024 live sessions per ruleset
        assert len(ev.run([{"type": "a", "id": "a1"}]).activations) == 1
    assert sorted(ev._pool) == sorted(pool)
    assert not ev._sessions


class _Opaque:
    """A value the adapter cannot send to the engine: deriving a fact that carries it makes the action raise (the
    adapter may be compiled, setup.py, so the failure is injected through the data, not by patching it)."""


def test_action_errors_are_reraised_and_session_cleaned() -> None:
    derive = {"id": "r", "when": [{"bind": "a", "type": "a"}], "derive": {"type": "b", "x": "=a.v"}}
    consume = {
        "id": "s",
        "when": [{"bind": "b", "type": "b", "all": [{"field": "x", "op": "exists"}]}],
        "derive": {"type": "c"},
    }
    ev = DurableEvaluator(stage(derive, consume))
    with pytest.raises(EngineError, match="r: TypeError"):
        ev.run([{"type": "a", "id": "a1", "v": _Opaque()}])
    assert not ev._sessions
    assert len(ev.run([{"type": "a", "id": "a1", "v": 1}]).activations) == 2


def test_sid_pool_hashes_are_distinct() -> None:
    pool = _sid_pool(256)
    assert len({fnv1a_32(s) for s in pool}) == len(pool) == 256


def test_fnv1a_matches_published_vectors() -> None:
    assert fnv1a_32("") == 0x811C9DC5
    assert fnv1a_32("a") == 0xE40C292C
    assert fnv1a_32("foobar") == 0xBF9CF968


def test_rule_with_no_matching_facts_is_quiet() -> None:
    rule = {
        "id": "r",
        "when": [{"bind": "a", "type": "a"}],
        "finding": {"code": "x", "category": "t", "indicator": "info", "summary": "s"},
    }
    assert both(stage(rule), [{"type": "other", "id": "o1"}]) == []
    assert both(stage(rule), []) == []


def test_or_group_with_two_true_branches_fires_once() -> None:
    """Raw durable_rules fires once per true branch of an `$or`."""
    rule = {
        "id": "r",
        "when": [
            {
                "bind": "a",
                "type": "a",
                "any": [{"field": "x", "op": ">", "value": 0}, {"field": "y", "op": ">", "value": 0}],
            }
        ],
        "derive": {"type": "b", "src": "=a.id"},
    }
    chained = {
        "id": "c",
        "when": [{"bind": "b", "type": "b"}],
        "finding": {"code": "x", "category": "t", "indicator": "info", "summary": "s"},
    }
    acts = both(stage(rule, chained), [{"type": "a", "id": "a1", "x": 1, "y": 1}])
    assert [a.rule for a in acts] == ["r", "c"]


def test_comparison_with_a_missing_referenced_field_is_false() -> None:
    """Raw durable_rules treats `a < b` as true when b is missing; the reference (and the adapter) say false."""
    rule = {
        "id": "r",
        "when": [{"bind": "t", "type": "t", "all": [{"field": "a", "op": "<", "ref": "b"}]}],
        "finding": {"code": "x", "category": "t", "indicator": "info", "summary": "s"},
    }
    assert both(stage(rule), [{"type": "t", "id": "t1", "a": 1}]) == []
    assert len(both(stage(rule), [{"type": "t", "id": "t1", "a": 1, "b": 2}])) == 1


def test_sessions_where_no_rule_completes_are_deleted_safely() -> None:
    """Deleting a session in which no action ran frees uninitialised pointers in durable_rules (heap corruption,
    seen as aborts in the CDS Hooks server); the adapter's sentinel makes an action run in every session where
    no rule fired. Sessions where a rule fired are deleted without it, many times over, mixed with the others."""
    rule = {
        "id": "r",
        "when": [
            {"bind": "gate", "type": "gate", "all": [{"field": "open", "op": "==", "value": True}]},
            {
                "bind": "lab",
                "type": "lab",
                "any": [{"field": "h", "op": "==", "value": False}, {"field": "d", "op": ">", "value": 365}],
            },
        ],
        "finding": {"code": "x", "category": "t", "indicator": "info", "summary": "s"},
    }
    ev = DurableEvaluator(stage(rule))
    fires = [{"type": "gate", "id": "g", "open": True}, {"type": "lab", "id": "l1", "h": False}]
    for _ in range(500):
        assert ev.run([{"type": "lab", "id": "l1", "h": False}]).activations == []
        assert (
            ev.run([{"type": "gate", "id": "g", "open": False}, {"type": "lab", "id": "l1", "h": False}]).activations
            == []
        )
        assert len(ev.run(fires).activations) == 1
    assert (
        len(ev.run([{"type": "gate", "id": "g", "open": True}, {"type": "lab", "id": "l1", "h": False}]).activations)
        == 1
    )


def test_facts_no_pattern_can_match_are_not_asserted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fact that fails a text `==`/`in` test of every pattern of its type (or lacks that field) is left out of
    the engine (cds.engine.prefilter, tests/engine/test_prefilter.py); the activations are the reference's."""
    rules = stage(
        JOIN,
        {
            "id": "inadequate",
            "when": [
                {"bind": "verdict", "type": "verdict", "all": [{"field": "adequacy", "op": "==", "value": "low"}]}
            ],
            "finding": {"code": "y", "category": "t", "indicator": "info", "summary": "s"},
        },
    )
    evaluator = DurableEvaluator(rules)
    payloads: list[dict[str, Any]] = []
    assert_fact = durable_rules_engine.assert_fact

    def spy(handle: int, payload: str) -> Any:  # the C call itself: the adapter may be compiled (setup.py)
        payloads.append(json.loads(payload))
        return assert_fact(handle, payload)

    monkeypatch.setattr(durable_rules_engine, "assert_fact", spy)
    others = [
        {"type": "verdict", "id": "v3", "trial": "trial-1", "adequacy": "unknown"},
        {"type": "verdict", "id": "v4", "trial": "trial-2"},
        {"type": "verdict", "id": "v5", "trial": "trial-2", "adequacy": "low"},
        {"type": "trial", "id": "trial-3", "outcome": "remission", "pct": 10.0},
    ]
    facts = VERDICTS + TRIALS + others
    assert evaluator.run(facts).activations == ReferenceEvaluator(rules).run(facts).activations
    # rules fired, so no sentinel was needed (see test_sessions_where_no_rule_completes_are_deleted_safely)
    assert sorted(p[_ID] for p in payloads) == ["trial-1", "trial-2", "v1", "v2", "v5"]


def test_numbers_written_with_a_bare_exponent_reach_the_engine() -> None:
    """durable_rules' parser rejects "2e-29" and "1e+30" (error 204), which is how orjson writes very small and very
    large floats: a mutated record's dose of 2e-29 mg failed the whole evaluation. Each value keeps its meaning."""
    rule = {
        "id": "big",
        "when": [{"bind": "a", "type": "a", "all": [{"field": "v", "op": ">", "value": 0.5}]}],
        "derive": {"type": "b"},
    }
    values = [2e-29, 1e30, -1e30, 1e-7, 1.5e-29, 0.75, 3]
    facts = [{"type": "a", "id": f"x{i}e5", "v": v} for i, v in enumerate(values)]  # ids like exponents, too
    rules = stage(rule)
    assert DurableEvaluator(rules).run(facts).activations == ReferenceEvaluator(rules).run(facts).activations
    assert len(ReferenceEvaluator(rules).run(facts).activations) == 3


def test_engine_json_keeps_every_value() -> None:
    payload = {"v": 2e-29, "w": [1e30, "2e5", {"x": -1e-7}], "s": "3e+5 and 1e30", "n": None, "i": 10, "t": True}
    assert json.loads(engine_json(payload)) == payload
    assert '"v":2.0e-29' in engine_json(payload) and '"s":"3e+5 and 1e30"' in engine_json(payload)
    assert engine_json({"a": 1.5, "b": "x"}) == '{"a":1.5,"b":"x"}'


@pytest.mark.parametrize("value", [[1, [2, 3e-9]], {"a": {"b": 1e300}}, (5e-324,), -2.5e22])
def test_engine_json_finds_an_exponent_however_deep(value: object) -> None:
    """Only floats are written with an exponent; one nested in a list or an object is found too."""
    text = engine_json({"v": value})
    assert json.loads(text) == {"v": json.loads(json.dumps(value))}
    assert not re.search(r"(?<![\d.])\d+e", text), text  # every exponent follows a decimal point


def test_engine_json_leaves_plain_numbers_and_text_alone() -> None:
    payload = {"a": 0.0001, "b": 123456.789, "c": "1e5", "d": [1, 2.5], "e": -0.0}
    assert engine_json(payload) == orjson.dumps(payload).decode()


@pytest.mark.parametrize(
    "value", [1e-4, -1e-4, 1.0000000000000002e-4, 0.00012345678901234, 1.0, 123456.789, 999999999999999.9, -1e15 + 1]
)
def test_floats_the_adapter_does_not_look_at_are_written_plainly(value: float) -> None:
    """engine_json assumes orjson writes every float in [1e-4, 1e15) without an exponent; this holds it to that."""
    assert b"e" not in orjson.dumps(value)
    assert engine_json({"v": value}) == orjson.dumps({"v": value}).decode()


@pytest.mark.parametrize("value", [9.999999999999999e-5, 1e15 * 10, 1e-300, -1e16])
def test_floats_outside_the_plain_range_are_still_checked(value: float) -> None:
    text = engine_json({"v": [value]})
    assert json.loads(text) == {"v": [value]}
    assert not re.search(r"(?<![\d.])\d+e", text), text
