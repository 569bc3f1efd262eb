"""Tests for cds.fhir.dosage: structured Dosage and free-text daily doses; unknown must stay unknown."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds.fhir.dosage import DoseEstimate, ProductStrength, daily_dose, parse_dose_text

TAB50 = ProductStrength(mg_per_unit=50)
SOLUTION = ProductStrength(mg_per_unit=2, per_ml=True)


def dq(value: Any, unit: str | None = "mg", code: str | None = None) -> dict[str, Any]:
    quantity: dict[str, Any] = {"value": value}
    quantity |= {"unit": unit} if unit is not None else {}
    quantity |= {"code": code} if code is not None else {}
    return {"doseAndRate": [{"doseQuantity": quantity}]}


def code(c: str) -> dict[str, Any]:
    return {"timing": {"code": {"coding": [{"code": c}]}}}


def repeat(**fields: Any) -> dict[str, Any]:
    return {"timing": {"repeat": fields}}


def unknown(est: DoseEstimate, fragment: str) -> None:
    assert est.mg_per_day is None, est
    assert any(fragment in p for p in est.problems), est.problems


# -- units ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("quantity", "strength", "expected"),
    [
        ({"value": 50, "unit": "mg"}, None, 50),
        ({"value": 50, "unit": "MG"}, None, 50),
        ({"value": 50, "code": "mg", "unit": "milligram"}, None, 50),
        ({"value": 0.5, "unit": "g"}, None, 500),
        ({"value": 250, "code": "ug"}, None, 0.25),
        ({"value": 250, "unit": "mcg"}, None, 0.25),
        ({"value": 250, "unit": "µg"}, None, 0.25),
        ({"value": 250, "unit": "μg"}, None, 0.25),
        ({"value": 500_000, "unit": "ng"}, None, 0.5),
        ({"value": 5, "unit": "mL"}, SOLUTION, 10),
        ({"value": 5, "code": "mL", "unit": "millilitre"}, SOLUTION, 10),
    ],
)
def test_mass_and_volume_units(quantity: dict[str, Any], strength: ProductStrength | None, expected: float) -> None:
    est = daily_dose({"doseAndRate": [{"doseQuantity": quantity}], **code("QD")}, strength)
    assert est.mg_per_day == pytest.approx(expected)
    assert "timing.code QD" in est.derivation


COUNT_UNITS = ["tablet", "tab", "tabs", "{tbl}", "TAB", "capsule", "cap", "{capsule}", "{Capsule}", "patch",
               "1", "{count}", "each", "ea", "unit"]  # fmt: skip


@pytest.mark.parametrize("unit", COUNT_UNITS)
def test_count_units_times_strength(unit: str) -> None:
    est = daily_dose({**dq(2, unit), **code("BID")}, TAB50)
    assert est.mg_per_day == pytest.approx(200)
    assert "x 50 mg/unit" in est.derivation


def test_count_code_wins_over_unknown_display_unit() -> None:
    est = daily_dose({**dq(1, unit="Tablet (oral)", code="{tbl}"), **code("QD")}, TAB50)
    assert est.mg_per_day == pytest.approx(50)


@pytest.mark.parametrize(
    ("dosage", "strength", "fragment"),
    [
        ({**dq(2, "tablet"), **code("BID")}, None, "needs the product strength"),
        ({**dq(5, "mL"), **code("BID")}, None, "needs the product strength"),
        ({**dq(5, "mL"), **code("BID")}, TAB50, "does not fit"),
        ({**dq(2, "tablet"), **code("BID")}, SOLUTION, "does not fit"),
        ({**dq(2, "puff"), **code("BID")}, TAB50, "unit 'puff' not convertible to mg"),
        ({**dq(2, "[iU]"), **code("BID")}, None, "not convertible"),
        ({**dq(2, None), **code("BID")}, None, "no unit"),
        ({**dq(1, "tablet"), **code("QD")}, ProductStrength(mg_per_unit=0), "not a positive number"),
        ({**dq(1, "tablet"), **code("QD")}, ProductStrength(mg_per_unit=math.inf), "not a positive number"),
    ],
)
def test_unconvertible_units(dosage: dict[str, Any], strength: ProductStrength | None, fragment: str) -> None:
    unknown(daily_dose(dosage, strength), fragment)


# -- frequency -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("timing_code", "per_day"),
    [
        ("QD", 1), ("QOD", 0.5), ("BID", 2), ("TID", 3), ("QID", 4), ("AM", 1), ("PM", 1), ("QAM", 1),
        ("QPM", 1), ("QHS", 1), ("HS", 1), ("Q4H", 6), ("Q6H", 4), ("Q8H", 3), ("Q12H", 2), ("Q24H", 1),
        ("WK", 1 / 7), ("QWK", 1 / 7), ("bid", 2), ("qhs", 1), ("q8h", 3), ("q.d.", 1), ("b.i.d.", 2),
        ("daily", 1), ("Daily", 1), ("once daily", 1), ("twice daily", 2), ("MO", 1 / 30), ("BED", 1),
    ],
)  # fmt: skip
def test_timing_codes(timing_code: str, per_day: float) -> None:
    est = daily_dose({**dq(10), **code(timing_code)})
    assert est.mg_per_day == pytest.approx(10 * per_day)
    assert f"timing.code {timing_code}" in est.derivation


@pytest.mark.parametrize(
    ("text", "per_day"),
    [("BID", 2), ("twice daily", 2), ("once daily", 1), ("every 8 hours", 3), ("three times a day", 3)],
)
def test_timing_code_text(text: str, per_day: float) -> None:
    est = daily_dose({**dq(10), "timing": {"code": {"text": text}}})
    assert est.mg_per_day == pytest.approx(10 * per_day)
    assert "timing.code.text" in est.derivation


@pytest.mark.parametrize(
    ("fields", "per_day"),
    [
        ({"frequency": 2, "period": 1, "periodUnit": "d"}, 2),
        ({"frequency": 1, "period": 12, "periodUnit": "h"}, 2),
        ({"frequency": 1, "period": 8, "periodUnit": "h"}, 3),
        ({"frequency": 1, "period": 86400, "periodUnit": "s"}, 1),
        ({"frequency": 1, "period": 720, "periodUnit": "min"}, 2),
        ({"frequency": 3, "period": 1, "periodUnit": "wk"}, 3 / 7),
        ({"frequency": 1, "period": 1, "periodUnit": "mo"}, 1 / 30),
        ({"frequency": 1, "period": 1, "periodUnit": "a"}, 1 / 365),
        ({"frequency": 1, "period": 2, "periodUnit": "d"}, 0.5),
        ({"period": 1, "periodUnit": "d"}, 1),  # frequency defaults to 1 when period is given
        ({"period": 1, "periodUnit": "wk"}, 1 / 7),
        ({"timeOfDay": ["08:00:00", "20:00:00"]}, 2),
        ({"timeOfDay": ["08:00:00"], "period": 1, "periodUnit": "d"}, 1),
        ({"when": ["MORN", "HS"]}, 2),
        ({"when": ["HS"]}, 1),
        ({"when": ["MORN", "HS"], "frequency": 2, "period": 1, "periodUnit": "d"}, 2),
        ({"dayOfWeek": ["mon", "wed", "fri"]}, 3 / 7),
        ({"dayOfWeek": ["mon", "thu"], "frequency": 2, "period": 1, "periodUnit": "d"}, 4 / 7),
    ],
)
def test_timing_repeat(fields: dict[str, Any], per_day: float) -> None:
    est = daily_dose({**dq(10), **repeat(**fields)})
    assert est.mg_per_day == pytest.approx(10 * per_day)
    assert "timing.repeat" in est.derivation


@pytest.mark.parametrize("key", ["frequencyMax", "periodMax"])
def test_max_fields_ignored_but_noted(key: str) -> None:
    est = daily_dose({**dq(10), **repeat(frequency=1, period=1, periodUnit="d", **{key: 3})})
    assert est.mg_per_day == pytest.approx(10)
    assert any(key in p and "ignored" in p for p in est.problems)


def test_repeat_and_code_agreeing() -> None:
    dosage = {
        **dq(10),
        "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}, "code": {"text": "BID"}},
    }
    assert daily_dose(dosage).mg_per_day == pytest.approx(20)


@pytest.mark.parametrize(
    ("timing", "fragment"),
    [
        (
            {
                "repeat": {"frequency": 1, "period": 1, "periodUnit": "d"},
                "code": {"coding": [{"code": "BID"}]},
            },
            "disagree",
        ),
        ({"code": {"coding": [{"code": "BID"}, {"code": "TID"}]}}, "disagree"),
        (
            {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", "timeOfDay": ["08:00", "20:00"]}},
            "disagrees",
        ),
        ({"repeat": {"frequency": 1, "period": 0, "periodUnit": "d"}}, "period 0"),
        ({"repeat": {"frequency": -2, "period": 1, "periodUnit": "d"}}, "frequency -2"),
        ({"repeat": {"frequency": "2", "period": 1, "periodUnit": "d"}}, "frequency 2"),
        ({"repeat": {"frequency": 1, "period": 1, "periodUnit": "fortnight"}}, "periodUnit"),
        ({"repeat": {"frequency": 1, "period": 1}}, "periodUnit"),
        ({"repeat": {"when": ["C"]}}, "meals"),
        ({"repeat": {"when": "HS"}}, "not a list"),
        ({"repeat": {"dayOfWeek": ["mon"], "period": 1, "periodUnit": "wk"}}, "dayOfWeek"),
        ({"repeat": {"dayOfWeek": ["funday"]}}, "dayOfWeek"),
        ({"repeat": "BID"}, "timing.repeat is not an object"),
        ("BID", "timing is not an object"),
        ({"code": "BID"}, "not a CodeableConcept"),
    ],
)
def test_bad_or_conflicting_timing(timing: Any, fragment: str) -> None:
    unknown(daily_dose({**dq(10), "timing": timing}), fragment)


@pytest.mark.parametrize(
    "dosage",
    [
        dq(50),
        {**dq(50), "timing": {}},
        {**dq(50), **repeat(frequency=2)},  # frequency without period: not a rate
        {**dq(50), **repeat(boundsPeriod={"start": "2024-01-01"})},
        {**dq(50), "text": "sertraline 50 mg"},
        {**dq(50), "timing": {"code": {"coding": [{"system": "http://snomed.info/sct", "code": "12345"}]}}},
    ],
)
def test_dose_without_frequency_is_unknown(dosage: dict[str, Any]) -> None:
    est = daily_dose(dosage)
    unknown(est, "no frequency")
    assert est.mg_per_day != 0


# -- structured dose selection --------------------------------------------------------------------------
def test_dose_range_uses_low_and_says_so() -> None:
    rng = {"low": {"value": 50, "unit": "mg"}, "high": {"value": 100, "unit": "mg"}}
    est = daily_dose({"doseAndRate": [{"doseRange": rng}], **code("BID")})
    assert est.mg_per_day == pytest.approx(100)
    assert "doseRange.low" in est.derivation


def test_first_dose_and_rate_used_others_noted() -> None:
    entries = [{"rateQuantity": {"value": 1}}, {"doseQuantity": {"value": 25, "unit": "mg"}},
               {"doseQuantity": {"value": 75, "unit": "mg"}}]  # fmt: skip
    est = daily_dose({"doseAndRate": entries, **code("QD")})
    assert est.mg_per_day == pytest.approx(25)
    assert any("further doseAndRate" in p for p in est.problems)


def test_derivation_names_path() -> None:
    est = daily_dose({**dq(2, "tablet"), **code("BID")}, TAB50)
    assert est.derivation == "doseQuantity 2 tablet x 50 mg/unit x 2/day (timing.code BID)"
    est = daily_dose({**dq(0.5, "g"), **repeat(frequency=1, period=1, periodUnit="d")})
    assert est.derivation == "doseQuantity 0.5 g = 500 mg x 1/day (timing.repeat 1 per 1 d)"


# -- as needed -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "prn",
    [
        {"asNeededBoolean": True},
        {"asNeeded": True},
        {"asNeededCodeableConcept": {"text": "insomnia"}},
        {"asNeededFor": [{"text": "insomnia"}]},
        {"text": "50 mg at bedtime as needed for sleep"},
        {"patientInstruction": "take 1 tablet daily PRN"},
    ],
)
def test_as_needed(prn: dict[str, Any]) -> None:
    est = daily_dose({**dq(50), **code("QD"), **prn}, TAB50)
    assert est.as_needed is True
    assert est.mg_per_day is None
    assert any("PRN" in p for p in est.problems)


def test_as_needed_false_is_regular() -> None:
    est = daily_dose({**dq(50), **code("QD"), "asNeededBoolean": False})
    assert (est.as_needed, est.mg_per_day) == (False, 50)


# -- text fallback -------------------------------------------------------------------------------------
def test_text_fallback_when_no_structured_dose() -> None:
    est = daily_dose({"text": "Take 1 tablet by mouth twice daily"}, TAB50)
    assert est.mg_per_day == pytest.approx(100)
    assert est.derivation.startswith("text 'Take 1 tablet")


def test_patient_instruction_after_unusable_text() -> None:
    est = daily_dose({"text": "see instructions", "patientInstruction": "100 mg at bedtime"})
    assert est.mg_per_day == pytest.approx(100)
    assert est.derivation.startswith("patientInstruction")
    assert any("no dose amount" in p for p in est.problems)


def test_text_fallback_after_unconvertible_structured_dose() -> None:
    est = daily_dose({**dq(1, "tablet"), **code("BID"), "text": "50 mg twice daily"})
    assert est.mg_per_day == pytest.approx(100)
    assert any("needs the product strength" in p for p in est.problems)


def test_text_dose_with_structured_timing() -> None:
    est = daily_dose({"text": "50 mg", **code("BID")})
    assert est.mg_per_day == pytest.approx(100)
    assert "timing.code BID" in est.derivation


def test_structured_dose_with_frequency_from_text() -> None:
    est = daily_dose({**dq(50), "text": "50 mg twice daily"})
    assert est.mg_per_day == pytest.approx(100)
    assert "frequency from text" in est.derivation
    est = daily_dose({**dq(50), "patientInstruction": "take at bedtime"})
    assert est.mg_per_day == pytest.approx(50)


def test_text_frequency_disagreeing_with_timing_is_unknown() -> None:
    unknown(daily_dose({"text": "50 mg twice daily", **code("TID")}), "disagrees with timing.code TID")


def test_structured_dose_disagreeing_with_text_is_unknown() -> None:
    unknown(daily_dose({**dq(50), "text": "100 mg twice daily"}), "disagree")


@pytest.mark.parametrize(
    ("text", "strength", "expected"),
    [
        ("50 mg twice daily", None, 100),
        ("50mg BID", None, 100),
        ("100 mg at bedtime", None, 100),
        ("100mg qhs", None, 100),
        ("150 mg once daily", None, 150),
        ("300 mg daily", None, 300),
        ("20 mg every morning", None, 20),
        ("take 2 tablets by mouth once daily", TAB50, 100),
        ("1 tab bid", TAB50, 100),
        ("take one tablet three times a day", TAB50, 150),
        ("take 1 tablet(s) orally 2 times a day", TAB50, 100),
        ("1.5 tablets daily", TAB50, 75),
        ("half a tablet daily", TAB50, 25),
        ("37.5 mg every 12 hours", None, 75),
        ("0.5 g daily", None, 500),
        ("25 mcg daily", None, 0.025),
        ("2 x 50 mg daily", None, 100),
        ("50 mg in the morning and 100 mg at night", None, 150),
        ("10 mg/day", None, 10),
        ("225 mg/day", None, 225),
        ("1 capsule every 8 hours", TAB50, 150),
        ("12.5 mg three times weekly", None, 12.5 * 3 / 7),
        # tolerated variants
        ("Take 50 MG by mouth with food twice a day", None, 100),
        ("TAKE TWO TABLETS PO QHS", TAB50, 100),
        ("four caps daily", TAB50, 200),
        ("1/2 tablet daily", TAB50, 25),
        ("1 1/2 tablets at bedtime", TAB50, 75),
        ("one and a half tablets at night", TAB50, 75),
        ("50 mg q8h", None, 150),
        ("50 mg every other day", None, 25),
        ("50 mg qod", None, 25),
        ("50 mg at 8 a.m. and 8 p.m.", None, 100),
        ("1 tab at 8am and 8pm", TAB50, 100),
        ("50 mg every morning and at bedtime", None, 100),
        ("50 mg once a week", None, 50 / 7),
        ("Take 2 tablets (100 mg total) by mouth daily", None, 100),
        ("5 mL twice daily", SOLUTION, 20),
        ("1,000 mcg daily", None, 1),
    ],
)
def test_parse_dose_text(text: str, strength: ProductStrength | None, expected: float) -> None:
    est = parse_dose_text(text, strength)
    assert est.mg_per_day == pytest.approx(expected), est
    assert est.derivation.startswith("text '")
    assert est.problems == ()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("n/a", "no dose amount"),
        ("", "empty"),
        ("   ", "empty"),
        ("take as directed", "no dose amount"),
        ("50 mg", "no frequency"),
        ("take 50 mg by mouth with food", "no frequency"),
        ("take 1 tablet daily", "needs the product strength"),
        ("2 puffs twice daily", "no dose amount"),
        ("1-2 tablets daily", "'1-2'"),
        ("10 mg/kg daily", "'/kg'"),
        ("50 mg per kg twice daily", "'per kg'"),
        ("50 mg every 4 to 6 hours", "'4 to 6'"),
        ("1 or 2 tablets at night", "'or'"),
        ("50 mg daily then 100 mg daily", "'then'"),
        ("25 mg daily, increase to 50 mg after a week", "'increase'"),
        ("up to 3 times daily", "'up to'"),
        ("50 mg twice daily every 8 hours", "conflicting"),
        ("Sertraline 50 mg tablet: take 1 tablet daily", "no frequency"),
        ("0 mg daily", "not positive"),
        ("50 mg every 0 hours", "zero"),
        ("5 mL daily", "needs the product strength"),
    ],
)
def test_parse_dose_text_unknown(text: str, fragment: str) -> None:
    unknown(parse_dose_text(text, None), fragment)


def test_parse_dose_text_prn() -> None:
    est = parse_dose_text("25 mg at bedtime as needed for sleep")
    assert (est.as_needed, est.mg_per_day) == (True, None)


def test_parse_dose_text_not_a_string() -> None:
    unknown(parse_dose_text(None, None), "not a string")  # type: ignore[arg-type]


# -- garbage -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dosage",
    [
        None,
        [],
        "50 mg BID",
        42,
        {},
        {"doseAndRate": "50 mg"},
        {"doseAndRate": [None, 3, "x"]},
        {"doseAndRate": [{"doseQuantity": "50 mg"}], **code("BID")},
        {**dq("50"), **code("BID")},
        {**dq(None), **code("BID")},
        {**dq(True), **code("BID")},
        {**dq(0), **code("BID")},
        {**dq(-50), **code("BID")},
        {**dq(math.nan), **code("BID")},
        {**dq(math.inf), **code("BID")},
        {**dq(10**400), **code("BID")},
        {**dq(1e-320, "ng"), **code("BID")},
        {**dq(1e300), **repeat(frequency=1e300, period=1e-300, periodUnit="s")},
        {"doseAndRate": [{"doseQuantity": {"value": 50, "unit": "mg", "comparator": "<"}}], **code("BID")},
        {"doseAndRate": [{"doseRange": {"high": {"value": 5, "unit": "mg"}}}], **code("BID")},
        {"doseAndRate": [{"doseRange": "5-10 mg"}], **code("BID")},
        {**dq(10), **repeat(frequency=1, period=0, periodUnit="d")},
        {**dq(10), **repeat(frequency=-1, period=1, periodUnit="d")},
        {**dq(10), "timing": {"code": {"coding": "BID"}}},
        {**dq(10), "asNeededBoolean": "yes"},
        {"text": "n/a"},
        {"text": 42, "patientInstruction": ["50 mg"]},
    ],
)
def test_garbage_gives_unknown(dosage: Any) -> None:
    est = daily_dose(dosage, TAB50)
    assert est.mg_per_day is None
    assert est.problems
    assert not any("internal error" in p for p in est.problems)


# -- never raises --------------------------------------------------------------------------------------
_KEYS = st.sampled_from(
    ["doseAndRate", "doseQuantity", "doseRange", "low", "high", "value", "unit", "code", "comparator",
     "timing", "repeat", "frequency", "frequencyMax", "period", "periodMax", "periodUnit", "timeOfDay",
     "when", "dayOfWeek", "coding", "text", "patientInstruction", "asNeeded", "asNeededBoolean",
     "asNeededCodeableConcept"]
)  # fmt: skip
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["mg", "g", "ug", "tablet", "{tbl}", "mL", "1", "d", "h", "wk", "BID", "Q0H", "HS", "C"])
    | st.sampled_from(["mon", "MORN", "08:00", "50 mg twice daily", "1 tab q8h", "every 0 hours", "as needed"])
)
_JSON = st.recursive(
    _LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_KEYS | st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=40,
)
_STRENGTHS = st.none() | st.builds(ProductStrength, mg_per_unit=st.floats(), per_ml=st.booleans())


def _check(est: DoseEstimate) -> None:
    assert isinstance(est, DoseEstimate)
    assert est.mg_per_day is None or (math.isfinite(est.mg_per_day) and est.mg_per_day > 0)
    assert est.mg_per_day is not None or est.problems
    assert not any("internal error" in p for p in est.problems), est.problems


@settings(max_examples=300, deadline=None)
@given(dosage=_JSON, strength=_STRENGTHS)
def test_daily_dose_never_raises(dosage: Any, strength: ProductStrength | None) -> None:
    _check(daily_dose(dosage, strength))


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=80) | st.from_regex(r"[0-9 .x/]{0,8}(mg|tab|ml)? ?(q\d*h|bid|every \d* ?hours|daily)?"))
def test_parse_dose_text_never_raises(text: str) -> None:
    _check(parse_dose_text(text, TAB50))
