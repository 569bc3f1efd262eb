"""Daily dose in mg/day from one FHIR R4 ``Dosage``, structured fields first, free text as fallback.

Unknown stays unknown: whatever FHIR semantics and unit arithmetic cannot settle gives ``mg_per_day=None``
and a problem string, never a guess (no "once daily" default) and never an exception. Plausibility
against label maxima is the caller's job; this module holds no clinical thresholds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from cds.fhir.dose_models import DoseEstimate as DoseEstimate
from cds.fhir.dose_models import ProductStrength as ProductStrength
from cds.fhir.dose_models import new_dose_estimate


class _Unusable(Exception):
    """Internal: the input is malformed or self-contradictory, so the daily dose is unknowable."""


Rate = tuple[float, str]  # administrations per day, and where that figure came from

_MASS_MG = {"g": 1000.0, "gram": 1000.0, "grams": 1000.0, "mg": 1.0, "milligram": 1.0, "milligrams": 1.0}
_MASS_MG |= {u: 1e-3 for u in ("mcg", "ug", "µg", "μg", "microgram", "micrograms")} | {"ng": 1e-6}
_COUNT_UNITS = frozenset({"tablet", "tablets", "tab", "tabs", "{tbl}", "{tablet}", "capsule", "capsules", "cap"})
_COUNT_UNITS |= {"caps", "{capsule}", "patch", "patches", "{patch}", "1", "{count}", "each", "ea", "unit"}
_ML_UNITS = frozenset({"ml", "milliliter", "milliliters", "millilitre", "millilitres"})
_PERIOD_DAYS = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.0, "a": 365.0}
_DAYS_OF_WEEK = frozenset({"mon", "tue", "wed", "thu", "fri", "sat", "sun"})
_GENERIC_MEALS = frozenset({"C", "AC", "PC"})  # EventTiming "at/before/after a meal": how many is unsaid
_CODE_RATES = {"QD": 1.0, "QDAY": 1.0, "DAILY": 1.0, "ONCE DAILY": 1.0, "TWICE DAILY": 2.0, "QOD": 0.5}
_CODE_RATES |= {"BID": 2.0, "TID": 3.0, "QID": 4.0, "WK": 1 / 7, "QWK": 1 / 7, "WEEKLY": 1 / 7, "MO": 1 / 30}
_CODE_RATES["MONTHLY"] = 1 / 30
_CODE_RATES |= dict.fromkeys(("AM", "PM", "QAM", "QPM", "QHS", "HS", "BED", "NIGHTLY"), 1.0)

_NUM = r"\d+(?:\.\d+)?|\.\d+"
_UNIT_WORDS = (
    r"milligrams?|mg|micrograms?|mcg|ug|ng|grams?|g|tablets?|tabs?|capsules?|caps?|patch(?:es)?"
    r"|millilit(?:er|re)s?|ml"
)
_DOSE_RE = re.compile(  # "2 x 50 mg", "1.5 tablets", "1 tablet (50 mg total)"
    rf"(?<![\w.\-/])(?:(?P<mult>\d{{1,3}})\s*[x*]\s*)?(?P<num>{_NUM})\s*(?P<unit>{_UNIT_WORDS})(?![a-z])"
    rf"(?:\s*\(\s*(?P<pnum>{_NUM})\s*(?P<punit>milligrams?|mg|mcg|ug|g)\s*(?P<total>total)?\s*\))?"
)
_RATE_RE = re.compile(
    r"\b(?P<times>once|twice|thrice|\d+(?:\.\d+)?\s*(?:times?|x))\s*(?:a|an|per|each|every|/)?\s*"
    r"(?P<tunit>daily|day|d|weekly|week|wk|monthly|month)\b"
    r"|\b(?P<other>every (?:other|alternate) day)\b"
    r"|(?:\bevery\s*|\bq\s*)(?P<n>\d+(?:\.\d+)?)?\s*(?P<eunit>hours?|hrs?|h|days?|d|weeks?|wks?|months?)\b"
    r"|\b(?P<abbr>qd|qday|daily|bid|tid|qid|qod|weekly|qwk|monthly)\b"
    r"|/\s*(?P<sunit>day|d|week|wk)\b|\b(?:per|a|an|each)\s+(?P<punit>day|week|month)\b"
)
_ANCHOR_SLOTS = {w: "morning" for w in ("morning", "mornings", "am", "qam")}
_ANCHOR_SLOTS |= {"noon": "noon", "midday": "noon"} | {w: "evening" for w in ("evening", "evenings", "pm", "qpm")}
_ANCHOR_SLOTS |= {w: "night" for w in ("night", "nights", "nightly", "bedtime", "hs", "qhs")}
_ANCHOR_RE = re.compile(rf"(?<![a-z])(?:{'|'.join(_ANCHOR_SLOTS)})\b")
_PRN_RE = re.compile(r"\b(?:prn|as needed|as required|when needed|when required|if needed|if required)\b")
# Wording that makes a single regular daily dose unknowable: ranges, maxima, sequences, alternatives, per kg.
_UNSAFE_RE = re.compile(
    r"\b(?:then|increas\w*|decreas\w*|taper\w*|titrat\w*|reduc\w*|up to|max\w*|not to exceed|no more than"
    r"|or)\b|\d\s*(?:-|–|to)\s*\.?\d|(?:/\s*|\bper )(?:kg|m2|m²)\b"
)
_WORD_NUMS = {"one": "1", "two": "2", "three": "3", "four": "4"}


def _pos_num(value: Any) -> float | None:
    """A finite number > 0, else None (bools are not numbers here, despite Python)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):  # a tuple (see elements.as_number)
        return None
    try:
        v = float(value)
    except OverflowError:
        return None
    return v if math.isfinite(v) and v > 0 else None


def _show(value: Any, limit: int = 60) -> str:
    try:
        text = value if isinstance(value, str) else repr(value)
    except ValueError:  # ints beyond Python's str-conversion digit limit
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _estimate(mg: float, derivation: str, notes: list[str]) -> DoseEstimate:
    """The only place a number leaves the module: it must be finite and positive."""
    if not (math.isfinite(mg) and mg > 0):
        return _unknown(f"arithmetic gave {mg!r} mg/day ({derivation})", notes)
    return new_dose_estimate({"mg_per_day": mg, "derivation": derivation, "problems": tuple(notes)})


def _unknown(problem: str, notes: list[str]) -> DoseEstimate:
    return new_dose_estimate({"mg_per_day": None, "derivation": f"unknown: {problem}", "problems": (*notes, problem)})


def _prn(where: str, notes: list[str]) -> DoseEstimate:
    problem = "as-needed (PRN) dosing: no regular daily dose"
    return new_dose_estimate(
        {"mg_per_day": None, "derivation": f"{where}: as needed", "as_needed": True, "problems": (*notes, problem)}
    )


# -- units ----------------------------------------------------------------------------------------------
def _to_mg(amount: float, unit: str, strength: ProductStrength | None) -> tuple[float | None, str]:
    """(mg, account) for amount+unit; when mg is None the account is the problem."""
    u = unit.strip().lower()
    if u in _MASS_MG:
        mg = amount * _MASS_MG[u]
        return mg, f"{amount:g} {unit}" + ("" if u == "mg" else f" = {mg:g} mg")
    is_ml = u in _ML_UNITS
    if not (is_ml or u in _COUNT_UNITS):
        return None, f"unit '{_show(unit)}' not convertible to mg"
    if strength is None:
        return None, f"unit '{unit}' needs the product strength, none given"
    per_unit = _pos_num(strength.mg_per_unit)
    if per_unit is None:
        return None, f"product strength {strength.mg_per_unit!r} mg is not a positive number"
    if strength.per_ml != is_ml:
        return None, f"unit '{unit}' does not fit a strength given per {'mL' if strength.per_ml else 'unit'}"
    return amount * per_unit, f"{amount:g} {unit} x {per_unit:g} mg/{'mL' if is_ml else 'unit'}"


def _known_unit(unit: Any) -> bool:
    return isinstance(unit, str) and unit.strip().lower() in _MASS_MG.keys() | _COUNT_UNITS | _ML_UNITS


def _quantity_mg(q: Any, where: str, strength: ProductStrength | None, notes: list[str]) -> Rate | None:
    """mg in one SimpleQuantity; the UCUM ``code`` wins over the display ``unit`` when both are known."""
    if not isinstance(q, Mapping):
        notes.append(f"{where} is not an object")
        return None
    if q.get("comparator") is not None:
        notes.append(f"{where} has a comparator, so it is not an exact dose")
        return None
    amount = _pos_num(q.get("value"))
    if amount is None:
        notes.append(f"{where}.value {_show(q.get('value'))} is not a positive number")
        return None
    units = [u for u in (q.get("code"), q.get("unit")) if isinstance(u, str) and u.strip()]
    if not units:
        notes.append(f"{where} has no unit")
        return None
    mg, account = _to_mg(amount, next((u for u in units if _known_unit(u)), units[0]), strength)
    if mg is None:
        notes.append(account)
        return None
    return mg, f"{where} {account}"


def _structured_dose(dosage: Mapping[str, Any], strength: ProductStrength | None, notes: list[str]) -> Rate | None:
    """mg per administration from the first doseAndRate entry that carries a dose (later ones are noted)."""
    entries = dosage.get("doseAndRate")
    if entries is None:
        return None
    if not isinstance(entries, list):
        notes.append("doseAndRate is not a list")
        return None
    dosed = [e for e in entries if isinstance(e, Mapping) and ("doseQuantity" in e or "doseRange" in e)]
    if not dosed:
        notes.append("doseAndRate has no doseQuantity or doseRange")
        return None
    if len(dosed) > 1:
        notes.append(f"{len(dosed) - 1} further doseAndRate dose(s) ignored; the first was used")
    if "doseQuantity" in dosed[0]:
        return _quantity_mg(dosed[0]["doseQuantity"], "doseQuantity", strength, notes)
    rng = dosed[0]["doseRange"]
    if not isinstance(rng, Mapping) or rng.get("low") is None:
        notes.append("doseRange has no low value")
        return None
    return _quantity_mg(rng["low"], "doseRange.low (low end of range used)", strength, notes)


# -- frequency from Timing ------------------------------------------------------------------------------
def _str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Unusable(f"{where} is not a list of strings")
    return value


def _repeat_rate(rep: Mapping[str, Any], notes: list[str]) -> Rate | None:
    """Administrations/day from Timing.repeat. timeOfDay/when entries count as the frequency if none given."""
    for key in ("frequencyMax", "periodMax"):
        if rep.get(key) is not None:
            notes.append(f"timing.repeat.{key} {_show(rep[key])} ignored for the regular dose")
    tod, when = rep.get("timeOfDay"), rep.get("when")
    if tod is not None and when is not None:
        raise _Unusable("timing.repeat has both timeOfDay and when")
    times = _str_list(tod, "timing.repeat.timeOfDay") if tod is not None else []
    if when is not None:
        times = _str_list(when, "timing.repeat.when")
        if _GENERIC_MEALS & set(times):
            raise _Unusable(f"timing.repeat.when {times} names meals without saying how many")
    events, ev_label = len(set(times)), f"{'timeOfDay' if tod is not None else 'when'} {', '.join(times)}"
    days = _str_list(rep["dayOfWeek"], "timing.repeat.dayOfWeek") if rep.get("dayOfWeek") is not None else []
    if not set(days) <= _DAYS_OF_WEEK:
        raise _Unusable(f"timing.repeat.dayOfWeek {_show(days)} has unknown days")
    freq_raw, period_raw = rep.get("frequency"), rep.get("period")
    freq = _pos_num(freq_raw)
    if freq_raw is not None and freq is None:
        raise _Unusable(f"timing.repeat.frequency {_show(freq_raw)} is not a positive number")
    if freq is not None and events and events != freq:
        raise _Unusable(f"timing.repeat.frequency {freq:g} disagrees with {ev_label}")
    if period_raw is None:
        if freq is not None:
            notes.append("timing.repeat.frequency without period ignored")
            return None
        if not (events or days):
            return None
        rate, label, period_days = float(events or 1), f"timing.repeat {ev_label if events else 'daily'}", 1.0
    else:
        period, unit = _pos_num(period_raw), rep.get("periodUnit")
        if period is None:
            raise _Unusable(f"timing.repeat.period {_show(period_raw)} is not a positive number")
        if not isinstance(unit, str) or unit.lower() not in _PERIOD_DAYS:
            raise _Unusable(f"timing.repeat.periodUnit {_show(unit)} is not one of {', '.join(_PERIOD_DAYS)}")
        f = freq or float(events or 1)
        period_days = period * _PERIOD_DAYS[unit.lower()]
        rate, label = f / period_days, f"timing.repeat {f:g} per {period:g} {unit}"
        label += f" at {ev_label}" if events else ""
    if days:
        if not math.isclose(period_days, 1.0):
            raise _Unusable("timing.repeat.dayOfWeek with a period other than one day")
        rate, label = rate * len(set(days)) / 7, f"{label} on {', '.join(days)}"
    return rate, label


def _abbrev_rate(code: str) -> float | None:
    """Administrations/day for a timing abbreviation such as BID, q.h.s. or Q8H."""
    key = " ".join(code.replace(".", "").upper().split())
    if key in _CODE_RATES:
        return _CODE_RATES[key]
    m = re.fullmatch(r"Q ?(\d{1,4}) ?H(?:R|RS|OURS?)?", key)
    return 24 / int(m[1]) if m and int(m[1]) > 0 else None


def _code_rate(concept: Any, notes: list[str]) -> Rate | None:
    if not isinstance(concept, Mapping):
        raise _Unusable("timing.code is not a CodeableConcept")
    codings = concept.get("coding") or []
    if not isinstance(codings, list):
        raise _Unusable("timing.code.coding is not a list")
    found: list[Rate] = []
    seen = [c["code"] for c in codings if isinstance(c, Mapping) and isinstance(c.get("code"), str)]
    found += [(r, f"timing.code {c}") for c in seen if (r := _abbrev_rate(c)) is not None]
    text = concept.get("text")
    if isinstance(text, str) and text.strip():
        seen.append(text)
        r = _abbrev_rate(text)
        phrase = (r, "") if r is not None else _text_rate(_normalise(text))
        found += [(phrase[0], f"timing.code.text '{_show(text)}'")] if phrase else []
    if len({round(r, 9) for r, _ in found}) > 1:
        raise _Unusable("timing.code codings disagree: " + "; ".join(label for _, label in found))
    if seen and not found:
        notes.append(f"timing.code {_show(seen)} not recognised")
    return found[0] if found else None


def _timing_rate(timing: Any, notes: list[str]) -> Rate | None:
    """Administrations/day from Timing, or None if it states none; raises _Unusable if parts disagree."""
    if timing is None:
        return None
    if not isinstance(timing, Mapping):
        raise _Unusable("timing is not an object")
    found: list[Rate] = []
    if timing.get("repeat") is not None:
        if not isinstance(timing["repeat"], Mapping):
            raise _Unusable("timing.repeat is not an object")
        found += [r for r in [_repeat_rate(timing["repeat"], notes)] if r]
    if timing.get("code") is not None:
        found += [r for r in [_code_rate(timing["code"], notes)] if r]
    if len({round(r, 9) for r, _ in found}) > 1:
        raise _Unusable("timing.repeat and timing.code disagree: " + "; ".join(label for _, label in found))
    return found[0] if found else None


# -- free text ------------------------------------------------------------------------------------------
def _normalise(text: str) -> str:
    """Lower-case; spell-outs, fractions and dotted abbreviations (q.d., a.m.) to plain tokens."""
    t = text.lower().replace("µ", "u").replace("μ", "u").replace("½", " 0.5").replace("(s)", "s")
    t = re.sub(r"\b((?:[a-z]\.){2,})", lambda m: m[1].replace(".", ""), t.replace("×", "x"))
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)
    t = re.sub(r"\b(one|two|three|four)\b", lambda m: _WORD_NUMS[m[1]], t)
    t = re.sub(r"\b(\d{1,3}) and (?:a |1 )?half\b", lambda m: f"{m[1]}.5", t)
    t = re.sub(r"\b(?:(?:a|1) )?half(?: of)?(?: an?\b)?", "0.5", t)
    t = re.sub(  # "1/2 tablet", "1 1/2 tablets"; the [1-9] keeps "x/0" out
        r"(?<![\d./])(?:(\d{1,2}) )?(\d{1,2})/([1-9]\d?)(?![\d/])",
        lambda m: f"{int(m[1] or 0) + int(m[2]) / int(m[3]):g}",
        t,
    )
    return " ".join(t.split())


def _rate_of(m: re.Match[str]) -> float:
    def per(word: str) -> float:  # occurrences per day of one "<word>": hour 24, day 1, week 1/7, month 1/30
        return {"h": 24.0, "d": 1.0, "w": 1 / 7}.get(word[0], 1 / 30)

    if m["times"]:
        n = {"once": 1.0, "twice": 2.0, "thrice": 3.0}.get(m["times"]) or float(m["times"].rstrip("timesx "))
        return n * per(m["tunit"])
    if m["other"]:
        return 0.5
    if m["eunit"]:
        if m["n"] is not None and float(m["n"]) == 0:
            raise _Unusable(f"interval '{m[0]}' is zero")
        return per(m["eunit"]) / float(m["n"] or 1)
    if m["abbr"]:
        return _CODE_RATES[m["abbr"].upper()]
    return per(m["sunit"] or m["punit"])


def _text_rate(seg: str) -> Rate | None:
    """Rate phrases ("twice daily", "every 8 hours", "/day") win; else count distinct times of day."""
    rates: dict[float, Rate] = {}
    for m in _RATE_RE.finditer(seg):
        r = _rate_of(m)
        rates.setdefault(round(r, 9), (r, m[0].strip()))
    if len(rates) > 1:
        raise _Unusable("conflicting frequencies in text: " + ", ".join(f"'{s}'" for _, s in rates.values()))
    if rates:
        return next(iter(rates.values()))
    slots: dict[str, str] = {}
    for m in _ANCHOR_RE.finditer(seg):
        slots.setdefault(_ANCHOR_SLOTS[m[0]], m[0])
    return (float(len(slots)), " and ".join(slots.values())) if slots else None


@dataclass(frozen=True)
class _TextDose:
    mg: float | None
    account: str  # the dose as read, or the problem when mg is None
    rate: Rate | None


def _mention_mg(m: re.Match[str], strength: ProductStrength | None) -> tuple[float | None, str]:
    amount = float(m["num"]) * int(m["mult"] or 1)
    if amount <= 0:
        return None, f"amount '{m[0]}' is not positive"
    if m["pnum"] and m["unit"] in _COUNT_UNITS and (m["total"] or amount == 1):
        mg, account = _to_mg(float(m["pnum"]), m["punit"], None)
        return (mg, f"'{m[0]}' read as {account}") if mg else (None, account)
    mg, account = _to_mg(amount, m["unit"], strength)
    return mg, (f"'{m[0]}' = {account}" if mg is not None else account)


def _text_doses(norm: str, strength: ProductStrength | None) -> list[_TextDose]:
    """One entry per dose mention; each mention owns the frequency words up to the next mention."""
    mentions = list(_DOSE_RE.finditer(norm))
    if len(mentions) > 1 and _text_rate(norm[: mentions[0].start()]):
        raise _Unusable("frequency words before the first of several doses in text")
    out = []
    for i, m in enumerate(mentions):
        seg = norm[m.end() : mentions[i + 1].start() if i + 1 < len(mentions) else len(norm)]
        seg = f"{norm[: m.start()]} | {seg}" if len(mentions) == 1 else seg
        out.append(_TextDose(*_mention_mg(m, strength), _text_rate(seg)))
    return out


def _from_text(
    text: Any, source: str, strength: ProductStrength | None, timing: Rate | None, notes: list[str]
) -> DoseEstimate:
    if not isinstance(text, str) or not text.strip():
        raise _Unusable(f"{source} is empty or not a string")
    norm, quoted = _normalise(text), f"{source} '{_show(text)}'"
    if _PRN_RE.search(norm):
        return _prn(quoted, notes)
    if unsafe := _UNSAFE_RE.search(norm):
        raise _Unusable(f"{quoted}: '{unsafe[0]}' leaves the regular dose unclear (range, maximum, change or per-kg)")
    doses = _text_doses(norm, strength)
    if not doses:
        raise _Unusable(f"{quoted}: no dose amount recognised")
    if len(doses) == 1 and timing is not None:
        if doses[0].rate is not None and not math.isclose(doses[0].rate[0], timing[0]):
            raise _Unusable(f"{quoted}: '{doses[0].rate[1]}' disagrees with {timing[1]}")
        doses = [replace(doses[0], rate=timing)]
    parts, total = [], 0.0
    for d in doses:
        if d.mg is None:
            raise _Unusable(f"{quoted}: {d.account}")
        if d.rate is None:
            raise _Unusable(f"{quoted}: no frequency for {d.account}")
        total += d.mg * d.rate[0]
        parts.append(f"{d.account} x {d.rate[0]:g}/day ({d.rate[1]})")
    return _estimate(total, f"{quoted}: " + " + ".join(parts), notes)


def _frequency_from_text(
    texts: list[tuple[str, Any]], mg: float, strength: ProductStrength | None, notes: list[str]
) -> Rate | None:
    """A frequency for a structured dose from text; a differing dose in the text makes it unusable."""
    for source, text in texts:
        if not isinstance(text, str) or _UNSAFE_RE.search(norm := _normalise(text)):
            continue
        doses = _text_doses(norm, strength)
        if len(doses) == 1 and doses[0].mg is not None and not math.isclose(doses[0].mg, mg, rel_tol=1e-6):
            raise _Unusable(f"{source} dose {doses[0].mg:g} mg disagrees with doseAndRate {mg:g} mg")
        if len(doses) > 1:
            notes.append(f"{source} has several doses, so it was not used for the frequency")
        rate = doses[0].rate if len(doses) == 1 else _text_rate(norm) if not doses else None
        if rate:
            return rate[0], f"frequency from {source}: '{rate[1]}'"
    return None


# -- entry points ---------------------------------------------------------------------------------------
def _daily_dose(dosage: Any, strength: ProductStrength | None, notes: list[str]) -> DoseEstimate:
    if not isinstance(dosage, Mapping):
        raise _Unusable("Dosage is not a JSON object")
    for key in ("asNeededBoolean", "asNeeded"):
        if dosage.get(key) is not None and not isinstance(dosage[key], bool):
            raise _Unusable(f"{key} {_show(dosage[key])} is not a boolean")
        if dosage.get(key) is True:
            return _prn(key, notes)
    for key in ("asNeededCodeableConcept", "asNeededFor"):
        if dosage.get(key) not in (None, {}, []):
            return _prn(key, notes)
    texts = [(k, dosage[k]) for k in ("text", "patientInstruction") if dosage.get(k) is not None]
    for key, text in texts:  # a PRN in the words outranks a regular schedule in the fields: the safe reading
        if isinstance(text, str) and _PRN_RE.search(_normalise(text)):
            return _prn(key, notes)
    timing = _timing_rate(dosage.get("timing"), notes)
    dose = _structured_dose(dosage, strength, notes)
    if dose is None:
        for key, text in texts:
            try:
                return _from_text(text, key, strength, timing, notes)
            except _Unusable as exc:
                notes.append(str(exc))
        raise _Unusable("no usable dose in doseAndRate or text")
    mg, account = dose
    rate = timing or _frequency_from_text(texts, mg, strength, notes)
    if rate is None:
        raise _Unusable("no frequency: neither timing nor text gives one")
    return _estimate(mg * rate[0], f"{account} x {rate[0]:g}/day ({rate[1]})", notes)


def _guarded(derive: Callable[[list[str]], DoseEstimate]) -> DoseEstimate:
    notes: list[str] = []
    try:
        return derive(notes)
    except _Unusable as exc:
        return _unknown(str(exc), notes)
    except Exception as exc:  # last-resort guard: malformed input must not take the engine down
        return _unknown(f"internal error on malformed input ({type(exc).__name__})", notes)


def daily_dose(dosage: Mapping[str, Any], strength: ProductStrength | None = None) -> DoseEstimate:
    """mg/day for one Dosage (the caller combines several dosageInstruction entries). Never raises."""
    return _guarded(lambda notes: _daily_dose(dosage, strength, notes))


def administered_mg(dosage: Any, strength: ProductStrength | None = None) -> tuple[float | None, str]:
    """(mg, account) given in one administration: MedicationAdministration.dosage.dose. When mg is None the
    account says why. A rate without a dose (an infusion) gives no amount: its duration is not part of the
    dosage. Never raises."""
    try:
        if not isinstance(dosage, Mapping):
            return None, "no dosage recorded" if dosage is None else "dosage is not a JSON object"
        if dosage.get("dose") is None:
            rated = any(k.startswith("rate") for k in dosage)
            return None, "an infusion rate without the amount given" if rated else "no dose recorded (dosage.dose)"
        notes: list[str] = []
        given = _quantity_mg(dosage["dose"], "dose", strength, notes)
        if given is None:
            return None, "; ".join(notes)
        return given
    except Exception as exc:  # last-resort guard, as for daily_dose
        return None, f"internal error on malformed input ({type(exc).__name__})"


def parse_dose_text(text: Any, strength: ProductStrength | None = None) -> DoseEstimate:
    """mg/day from free-text directions such as "take 1 tablet by mouth twice daily". Never raises."""
    return _guarded(lambda notes: _from_text(text, "text", strength, None, notes))
