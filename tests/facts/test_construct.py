from __future__ import annotations

from datetime import date

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cds.facts import construct
from cds.facts.construct import ConstructionMismatch, trusted
from cds.facts.models import LabResult, Score
from cds.findings import Finding, FindingSource

SCORE = {"ref": "Observation/1", "instrument": "phq9", "value": 14.0, "date": date(2025, 3, 1)}


def test_the_test_suite_checks_every_construction() -> None:
    assert construct.CHECK  # tests/conftest.py sets CDS_CHECK_CONSTRUCTION before cds is imported


def test_same_model_as_validation_with_defaults_in_field_order() -> None:
    values = {"value": 4.1, "analyte": "tsh", "ref": "Observation/2", "date": date(2025, 1, 2), "high": 4.0}
    made = trusted(LabResult)(values)
    validated = LabResult(**values)
    assert type(made) is LabResult
    assert made == validated
    assert repr(made) == repr(validated)  # the same fields in the same order, defaults included
    assert made.model_dump_json() == validated.model_dump_json()
    assert made.model_fields_set == validated.model_fields_set == set(values)
    with pytest.raises(ValidationError):
        made.value = 1.0  # type: ignore[misc]  # still frozen


def test_default_factory_gives_each_model_its_own_value() -> None:
    source = FindingSource(label="test", url=None, confidence="C")
    base = {
        "code": "x",
        "rule": "r",
        "rule_version": "1",
        "category": "trd",
        "indicator": "info",
        "summary": "s",
        "detail": "d",
        "evidence": (),
        "source": source,
        "subject": None,
        "needs_clinical_review": False,
    }
    make = trusted(Finding)
    a, b = make(dict(base)), make(dict(base))
    assert a.attributes == {} and a.attributes is not b.attributes
    assert a == Finding(**base)


@pytest.mark.parametrize(
    "values",
    [
        {**SCORE, "valu": 3.0},  # a name the model does not have
        {k: v for k, v in SCORE.items() if k != "date"},  # a required field left out
    ],
)
def test_a_wrong_field_gets_pydantic_s_own_error(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        trusted(Score)(values)


def test_a_value_validation_would_convert_is_caught_when_checking(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {**SCORE, "value": 14}  # an int where the model has a float: validation gives 14.0
    with pytest.raises(ConstructionMismatch, match="Score"):
        trusted(Score)(values)
    monkeypatch.setattr(construct, "CHECK", False)
    assert trusted(Score)(values).value == 14  # not converted outside the check: what the check is for


class _Validated(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    tags: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip()


def test_a_model_with_validators_is_always_validated() -> None:
    assert trusted(_Validated)({"name": "  x "}).name == "x"


def test_every_field_in_order_or_not_gives_the_model_s_order() -> None:
    in_order = dict(SCORE)
    made = trusted(Score)(in_order)
    assert made.__dict__ is in_order  # adopted: the caller made it for this call
    shuffled = dict(reversed(list(SCORE.items())))
    other = trusted(Score)(shuffled)
    assert list(other.__dict__) == list(Score.model_fields) and other.__dict__ is not shuffled
    assert repr(made) == repr(other) == repr(Score(**SCORE))


def test_replace_is_model_copy_with_an_update() -> None:
    made = trusted(Score)(dict(SCORE))
    replaced = trusted(Score).replace(made, {"value": 9.0})
    copied = made.model_copy(update={"value": 9.0})
    assert repr(replaced) == repr(copied) and replaced.value == 9.0 and made.value == 14.0
    with pytest.raises(ConstructionMismatch):  # unlike model_copy, the check mode validates the update
        trusted(Score).replace(made, {"value": 9})  # an int where the model holds a float
