"""Memos of parsed FHIR JSON stay bounded over a population of any size and give the computed answer."""

from __future__ import annotations

from typing import Any

from cds.fhir.memo import ConceptMemo


def test_memo_returns_the_computed_value_and_computes_each_value_once() -> None:
    calls: list[Any] = []

    def compute(value: Any) -> str:
        calls.append(value)
        return str(value["code"])

    memo: ConceptMemo[str] = ConceptMemo(limit=10)
    concept = {"coding": [{"system": "s", "code": "1"}], "code": "1"}
    assert memo.get(concept, compute) == "1"
    assert memo.get(dict(concept), compute) == "1"  # an equal value parsed elsewhere
    assert len(calls) == 1


def test_memo_never_holds_more_than_its_limit() -> None:
    memo: ConceptMemo[int] = ConceptMemo(limit=3)
    for i in range(100):
        assert memo.get({"code": i}, lambda v: int(v["code"]) * 2) == i * 2
        assert len(memo._values) <= 3


def test_values_without_a_json_form_are_computed_every_time() -> None:
    memo: ConceptMemo[int] = ConceptMemo(limit=3)
    assert memo.get({"code": object()}, lambda _v: 7) == 7
    assert not memo._values
