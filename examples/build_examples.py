"""Generate the example patient bundles in this folder, plus expected.json.

Run from the repository root:  python examples/build_examples.py
The JSON files are the deliverable; this script only keeps them consistent (dates, ids,
arithmetic). It checks every date window against the rules written in README.md, so a
typo in a date fails loudly here instead of silently changing an example's meaning.

Evaluation date for every example: now = 2026-01-15.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOW = date(2026, 1, 15)

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
UCUM = "http://unitsofmeasure.org"
GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"

MIN_DOSE = {  # MGH-ATRQ minimum adequate daily dose, mg/day (staging-and-adequacy.md §2.2)
    "citalopram": 20,
    "escitalopram": 10,
    "fluoxetine": 20,
    "paroxetine": 20,
    "sertraline": 50,
    "venlafaxine": 150,
    "desvenlafaxine": 50,
    "duloxetine": 60,
    "bupropion": 300,
    "mirtazapine": 15,
    "vortioxetine": 10,
    "nortriptyline": 75,
    "amitriptyline": 150,
    "trazodone": 300,
}
INGREDIENT_RXCUI = {
    "sertraline": "36437",
    "escitalopram": "321988",
    "venlafaxine": "39786",
    "bupropion": "42347",
    "mirtazapine": "15996",
    "duloxetine": "72625",
    "aripiprazole": "89013",
    "lithium": "6448",
    "citalopram": "2556",
    "fluoxetine": "4493",
    "vortioxetine": "1455099",
    "trazodone": "10737",
}
# Product codes (SCD), copied from /work/shared/data/rxnorm-antidepressant-products.csv
SCD = {
    "312941": "sertraline 50 MG Oral Tablet",
    "312938": "sertraline 100 MG Oral Tablet",
    "993541": "24 HR bupropion hydrochloride 150 MG Extended Release Oral Tablet",
    "596934": "duloxetine 60 MG Delayed Release Oral Capsule",
    "310385": "fluoxetine 20 MG Oral Capsule",
    "314111": "mirtazapine 30 MG Oral Tablet",
    "311726": "mirtazapine 45 MG Oral Tablet",
    "349332": "escitalopram 10 MG Oral Tablet",
    "351250": "escitalopram 20 MG Oral Tablet",
    "200371": "citalopram 20 MG Oral Tablet",
    "313585": "24 HR venlafaxine 75 MG Extended Release Oral Capsule",
    "808748": "24 HR venlafaxine 225 MG Extended Release Oral Tablet",
    "402131": "aripiprazole 5 MG Oral Tablet",
    "856377": "trazodone hydrochloride 50 MG Oral Tablet",
    "1439808": "vortioxetine 10 MG Oral Tablet",
}


def D(s: str) -> date:
    return date.fromisoformat(s)


def add(s: str, days: int) -> str:
    return (D(s) + timedelta(days=days)).isoformat()


def days_between(a: str, b: str) -> int:
    return (D(b) - D(a)).days


# ---------------------------------------------------------------- FHIR fragments


def cc_ingredient(name: str) -> dict:
    return {"coding": [{"system": RXNORM, "code": INGREDIENT_RXCUI[name], "display": name}], "text": name}


def cc_product(code: str) -> dict:
    return {"coding": [{"system": RXNORM, "code": code, "display": SCD[code]}], "text": SCD[code]}


def mg(v: float) -> dict:
    return {"value": v, "unit": "mg", "system": UCUM, "code": "mg"}


def dosage_mg(
    v: float,
    *,
    freq: int = 1,
    text: str | None = None,
    bounds: tuple[str, str] | None = None,
    code: str | None = None,
    when_hs: bool = False,
) -> dict:
    """doseQuantity in mg x timing (repeat.frequency per 1 day, or a timing.code)."""
    timing: dict = {}
    if code:
        timing["code"] = {"coding": [{"system": GTS, "code": code}], "text": code}
    else:
        timing["repeat"] = {"frequency": freq, "period": 1, "periodUnit": "d"}
        if when_hs:
            timing["repeat"]["when"] = ["HS"]
            timing["code"] = {"text": "QHS"}
    if bounds:
        timing.setdefault("repeat", {})["boundsPeriod"] = {"start": bounds[0], "end": bounds[1]}
    out = {
        "text": text or f"{v:g} mg {'once' if freq == 1 else str(freq) + ' times'} daily",
        "timing": timing,
        "route": {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral route"}]},
        "doseAndRate": [{"doseQuantity": mg(v)}],
    }
    return out


def dosage_units(n: float, unit: str, *, text: str, bounds: tuple[str, str] | None = None) -> dict:
    """doseQuantity in tablets/capsules (daily dose = product strength x n), once daily."""
    rep: dict = {"frequency": 1, "period": 1, "periodUnit": "d"}
    if bounds:
        rep["boundsPeriod"] = {"start": bounds[0], "end": bounds[1]}
    return {
        "text": text,
        "timing": {"repeat": rep},
        "doseAndRate": [{"doseQuantity": {"value": n, "unit": unit, "system": UCUM, "code": "{" + unit + "}"}}],
    }


class Ex:
    """One example bundle under construction."""

    def __init__(self, fname: str, pid: str, *, btype: str = "collection", url_style: str = "url"):
        self.fname, self.pid, self.btype, self.url_style = fname, pid, btype, url_style
        self.entries: list[dict] = []
        self.phq: list[tuple[str, int | None]] = []  # (date, score) of usable PHQ-9 totals
        self.expected: dict = {}
        self.broken_ids: set[str] = set()  # resources that are meant to fail validation

    def full_url(self, rt: str, rid: str) -> str:
        if self.url_style == "uuid":
            return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"trd-cds-examples/{self.fname}/{rt}/{rid}"))
        return f"https://example.org/fhir/{rt}/{rid}"

    def add(self, res: dict, *, search_mode: str = "match") -> dict:
        ids = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in self.entries if "resource" in e}
        key = (res["resourceType"], res["id"])
        assert key not in ids, f"duplicate id {key} in {self.fname}"
        entry: dict = {"fullUrl": self.full_url(*key), "resource": res}
        if self.btype == "searchset":
            entry["search"] = {"mode": search_mode}
        if self.btype == "transaction":
            entry["request"] = {"method": "PUT", "url": f"{key[0]}/{key[1]}"}
        self.entries.append(entry)
        return res

    @property
    def subj(self) -> dict:
        return {"reference": f"Patient/{self.pid}"}

    # ---- resource helpers
    def patient(self, family: str, given: str, gender: str, birth: str) -> None:
        self.add(
            {
                "resourceType": "Patient",
                "id": self.pid,
                "identifier": [{"system": "https://example.org/mrn", "value": self.pid.upper()}],
                "name": [{"family": family, "given": [given]}],
                "gender": gender,
                "birthDate": birth,
            }
        )

    def practitioner(self, rid: str = "dr-rivera") -> None:
        self.add(
            {
                "resourceType": "Practitioner",
                "id": rid,
                "name": [{"family": "Rivera", "given": ["Maya"], "prefix": ["Dr."]}],
            }
        )

    def condition(
        self,
        rid: str,
        system: str,
        code: str,
        display: str,
        onset: str,
        *,
        status: str = "active",
        abatement: str | None = None,
    ) -> None:
        res = {
            "resourceType": "Condition",
            "id": rid,
            "clinicalStatus": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]
            },
            "verificationStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                        "code": "confirmed",
                    }
                ]
            },
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                            "code": "problem-list-item",
                        }
                    ]
                }
            ],
            "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
            "subject": self.subj,
            "onsetDateTime": onset,
            "recordedDate": onset,
        }
        if abatement:
            res["abatementDateTime"] = abatement
        self.add(res)

    def phq9(self, rid: str, when: str, score: int, kind: str = "int") -> None:
        res = {
            "resourceType": "Observation",
            "id": rid,
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "survey",
                            "display": "Survey",
                        }
                    ]
                }
            ],
            "code": {
                "coding": [
                    {
                        "system": LOINC,
                        "code": "44261-6",
                        "display": "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
                    }
                ],
                "text": "PHQ-9 total score",
            },
            "subject": self.subj,
            "effectiveDateTime": f"{when}T10:30:00-05:00",
        }
        if kind == "int":
            res["valueInteger"] = score
        elif kind == "qty":
            res["valueQuantity"] = {"value": score, "unit": "{score}", "system": UCUM, "code": "{score}"}
        elif kind == "str":
            res["valueString"] = str(score)
        self.add(res)
        self.phq.append((when, score))

    def med_statement(
        self,
        rid: str,
        med: dict,
        start: str | None,
        end: str | None,
        dosage: list | None,
        *,
        status: str = "completed",
        reason: dict | None = None,
        contained: list | None = None,
        ref: str | None = None,
    ) -> dict:
        res: dict = {"resourceType": "MedicationStatement", "id": rid, "status": status}
        if contained:
            res["contained"] = contained
        if reason:
            res["statusReason"] = [reason]
        if ref:
            res["medicationReference"] = {"reference": ref}
        else:
            res["medicationCodeableConcept"] = med
        res["subject"] = self.subj
        if start or end:
            res["effectivePeriod"] = {k: v for k, v in (("start", start), ("end", end)) if v}
        res["dateAsserted"] = end or start or NOW.isoformat()
        if dosage is not None:
            res["dosage"] = dosage
        return self.add(res)

    def med_request(
        self,
        rid: str,
        med: dict,
        authored: str,
        dosage: list,
        *,
        status: str = "completed",
        reason: dict | None = None,
        validity: tuple[str, str] | None = None,
        dispense_qty: tuple[float, str] | None = None,
    ) -> dict:
        res: dict = {"resourceType": "MedicationRequest", "id": rid, "status": status}
        if reason:
            res["statusReason"] = reason
        res.update(
            {
                "intent": "order",
                "medicationCodeableConcept": med,
                "subject": self.subj,
                "authoredOn": authored,
                "requester": {"reference": "Practitioner/dr-rivera"},
                "dosageInstruction": dosage,
            }
        )
        if validity or dispense_qty:
            dr: dict = {}
            if validity:
                dr["validityPeriod"] = {"start": validity[0], "end": validity[1]}
            if dispense_qty:
                dr["quantity"] = {
                    "value": dispense_qty[0],
                    "unit": dispense_qty[1],
                    "system": UCUM,
                    "code": "{" + dispense_qty[1] + "}",
                }
            res["dispenseRequest"] = dr
        return self.add(res)

    def dispense(
        self, rid: str, code: str, handed: str, qty: int, days: int, unit: str, text: str | None = None
    ) -> None:
        res: dict = {
            "resourceType": "MedicationDispense",
            "id": rid,
            "status": "completed",
            "medicationCodeableConcept": cc_product(code),
            "subject": self.subj,
            "quantity": {"value": qty, "unit": unit, "system": UCUM, "code": "{" + unit + "}"},
            "daysSupply": {"value": days, "unit": "day", "system": UCUM, "code": "d"},
            "whenPrepared": handed,
            "whenHandedOver": f"{handed}T15:00:00-05:00",
        }
        if text:
            res["dosageInstruction"] = [{"text": text}]
        self.add(res)

    # ---- expectation helpers
    def trial(
        self,
        ingredient: str,
        start: str,
        end: str,
        adequacy: str,
        outcome: str,
        *,
        max_dose: float | None,
        weeks_at_adequate: float | None,
        improvement: float | None,
        baseline: tuple[str, int] | None = None,
        end_score: tuple[str, int] | None = None,
        **extra,
    ) -> None:
        """Record an expected trial and check the score windows against the rules."""
        if baseline is not None or end_score is not None:
            b = self.pick(start, -30, 7, ref=start)
            e = self.pick(end, -14, 14, ref=end)
            assert b == baseline, (self.fname, ingredient, "baseline", b, baseline)
            assert e == end_score, (self.fname, ingredient, "end", e, end_score)
            imp = round((b[1] - e[1]) / b[1] * 100, 1)
            assert imp == improvement, (self.fname, ingredient, imp, improvement)
            cls = (
                "remission"
                if e[1] <= 4
                else "response"
                if imp >= 50
                else "partial_response"
                if imp >= 25
                else "nonresponse"
            )
            if outcome != "intolerance":
                assert cls == outcome, (self.fname, ingredient, cls, outcome)
        t = {
            "ingredient": ingredient,
            "adequacy": adequacy,
            "outcome": outcome,
            "start": start,
            "end": end,
            "max_daily_dose_mg": max_dose,
            "weeks_at_adequate_dose": weeks_at_adequate,
            "improvement_pct": improvement,
        }
        if baseline:
            t["baseline_score"] = {"date": baseline[0], "value": baseline[1]}
        if end_score:
            t["end_score"] = {"date": end_score[0], "value": end_score[1]}
        t.update(extra)
        self.expected.setdefault("trials", []).append(t)

    def pick(self, anchor: str, lo: int, hi: int, ref: str) -> tuple[str, int] | None:
        cands = [(d, s) for d, s in self.phq if lo <= days_between(anchor, d) <= hi and D(d) <= NOW and s is not None]
        return max(cands) if cands else None

    def write(self, expected_all: dict, **trd) -> None:
        for t in self.expected.get("trials", []):
            assert D(t["start"]) <= D(t["end"]) <= NOW
        starts = [t["start"] for t in self.expected.get("trials", [])]
        assert starts == sorted(starts), self.fname
        bundle = {
            "resourceType": "Bundle",
            "id": self.fname.removesuffix(".json"),
            "meta": {"lastUpdated": "2026-01-14T12:00:00Z"},
            "type": self.btype,
        }
        if self.btype == "searchset":
            bundle["total"] = sum(1 for e in self.entries if e.get("search", {}).get("mode") == "match")
            bundle["link"] = [{"relation": "self", "url": f"https://example.org/fhir/Patient/{self.pid}/$everything"}]
        bundle["timestamp"] = "2026-01-14T12:00:00Z"
        bundle["entry"] = self.entries
        (HERE / self.fname).write_text(json.dumps(bundle, indent=2, ensure_ascii=False) + "\n")
        expected_all[self.fname] = {
            "patient": f"Patient/{self.pid}",
            **trd,
            "trials": self.expected.get("trials", []),
        }
        if self.broken_ids:
            expected_all[self.fname]["deliberately_invalid_entries"] = sorted(self.broken_ids)


def weeks(a: str, b: str) -> float:
    return round(days_between(a, b) / 7, 1)


ADVERSE = {
    "coding": [{"system": SNOMED, "code": "62014003", "display": "Adverse reaction to drug"}],
    "text": "Adverse reaction to drug",
}


def build() -> dict:
    exp: dict = {}

    # 01 ------------------------------------------------------------------------------
    x = Ex("01-trd-two-adequate-failures.json", "ex01-patient")
    x.patient("Okafor", "Amara", "female", "1984-03-12")
    x.practitioner()
    x.condition(
        "ex01-mdd",
        ICD10CM,
        "F33.2",
        "Major depressive disorder, recurrent severe without psychotic features",
        "2025-01-20",
    )
    s1, e1 = "2025-02-03", "2025-04-14"  # sertraline 100 mg, 70 days = 10.0 weeks
    s2, e2 = "2025-04-15", "2025-06-10"  # escitalopram 20 mg, 56 days = 8.0 weeks
    x.phq9("ex01-phq-1", "2025-01-27", 20)
    x.phq9("ex01-phq-2", "2025-03-10", 19, "qty")
    x.phq9("ex01-phq-3", e1, 18)
    x.phq9("ex01-phq-4", "2025-05-13", 17, "qty")
    x.phq9("ex01-phq-5", e2, 15)
    x.med_statement("ex01-ms-sertraline", cc_ingredient("sertraline"), s1, e1, [dosage_mg(100)])
    x.med_request(
        "ex01-mr-escitalopram",
        cc_product("351250"),
        s2,
        [dosage_units(1, "tablet", text="Take 1 tablet (20 mg) by mouth once daily", bounds=(s2, e2))],
    )
    x.trial(
        "sertraline",
        s1,
        e1,
        "adequate",
        "nonresponse",
        max_dose=100,
        weeks_at_adequate=weeks(s1, e1),
        improvement=10.0,
        baseline=("2025-01-27", 20),
        end_score=(e1, 18),
    )
    x.trial(
        "escitalopram",
        s2,
        e2,
        "adequate",
        "nonresponse",
        max_dose=20,
        weeks_at_adequate=weeks(s2, e2),
        improvement=16.7,
        baseline=(e1, 18),
        end_score=(e2, 15),
    )
    x.write(exp, trd_status="meets", failed_adequate_trials=2)

    # 02 ------------------------------------------------------------------------------
    x = Ex("02-inadequate-dose-venlafaxine-75.json", "ex02-patient", url_style="uuid")
    x.patient("Lindqvist", "Erik", "male", "1971-09-30")
    x.condition("ex02-mdd", SNOMED, "370143000", "Major depressive disorder", "2025-03-01")
    s, e = "2025-03-17", "2025-05-26"  # 70 days = 10.0 weeks at 75 mg (< 150)
    x.phq9("ex02-phq-1", "2025-03-10", 17)
    x.phq9("ex02-phq-2", "2025-04-14", 17)
    x.phq9("ex02-phq-3", e, 16)
    x.med_statement("ex02-ms-venlafaxine", cc_ingredient("venlafaxine"), s, e, [dosage_mg(75, code="QD")])
    x.trial(
        "venlafaxine",
        s,
        e,
        "inadequate_dose",
        "nonresponse",
        max_dose=75,
        weeks_at_adequate=0.0,
        improvement=5.9,
        baseline=("2025-03-10", 17),
        end_score=(e, 16),
    )
    x.write(exp, trd_status="does_not_meet", failed_adequate_trials=0)

    # 03 ------------------------------------------------------------------------------
    x = Ex("03-inadequate-duration-citalopram-3-weeks.json", "ex03-patient")
    x.patient("Haddad", "Layla", "female", "1990-06-02")
    x.condition("ex03-mdd", ICD10CM, "F32.1", "Major depressive disorder, single episode, moderate", "2025-08-01")
    s, e = "2025-09-01", "2025-09-22"  # 21 days = 3.0 weeks at 20 mg
    x.phq9("ex03-phq-1", "2025-08-25", 17)
    x.phq9("ex03-phq-2", e, 16)
    x.med_statement(
        "ex03-ms-citalopram",
        cc_product("200371"),
        s,
        e,
        [dosage_units(1, "tablet", text="Take 1 tablet (20 mg) by mouth daily")],
        status="stopped",
        reason={"text": "Patient chose to stop; no side effects reported"},
    )
    x.trial(
        "citalopram",
        s,
        e,
        "inadequate_duration",
        "nonresponse",
        max_dose=20,
        weeks_at_adequate=3.0,
        improvement=5.9,
        baseline=("2025-08-25", 17),
        end_score=(e, 16),
    )
    x.write(exp, trd_status="does_not_meet", failed_adequate_trials=0)

    # 04 ------------------------------------------------------------------------------
    x = Ex("04-intolerance-then-one-failure.json", "ex04-patient")
    x.patient("Nguyen", "Thanh", "male", "1979-11-19")
    x.practitioner()
    x.condition("ex04-mdd", ICD10CM, "F33.1", "Major depressive disorder, recurrent, moderate", "2025-04-01")
    s1, e1 = "2025-04-14", "2025-04-28"  # sertraline 50 mg, 14 days = 2.0 weeks, stopped: adverse reaction
    s2, e2 = "2025-05-05", "2025-06-30"  # duloxetine 60 mg, 56 days = 8.0 weeks
    x.phq9("ex04-phq-1", "2025-04-07", 18)
    x.phq9("ex04-phq-2", s2, 18, "qty")
    x.phq9("ex04-phq-3", "2025-06-02", 15)
    x.phq9("ex04-phq-4", e2, 12, "str")  # valueString "12", as US Core examples do
    x.med_statement(
        "ex04-ms-sertraline",
        cc_ingredient("sertraline"),
        s1,
        e1,
        [dosage_mg(50)],
        status="stopped",
        reason=ADVERSE,
    )
    x.med_request(
        "ex04-mr-duloxetine",
        cc_product("596934"),
        s2,
        [dosage_units(1, "capsule", text="Take 1 capsule (60 mg) by mouth once daily", bounds=(s2, e2))],
    )
    # sertraline: the end-window score is the 2025-05-05 score (18), but the documented adverse reaction wins
    x.trial(
        "sertraline",
        s1,
        e1,
        "inadequate_duration",
        "intolerance",
        max_dose=50,
        weeks_at_adequate=2.0,
        improvement=0.0,
        baseline=("2025-04-07", 18),
        end_score=(s2, 18),
    )
    x.trial(
        "duloxetine",
        s2,
        e2,
        "adequate",
        "partial_response",
        max_dose=60,
        weeks_at_adequate=8.0,
        improvement=33.3,
        baseline=(s2, 18),
        end_score=(e2, 12),
    )
    x.write(exp, trd_status="does_not_meet", failed_adequate_trials=1)

    # 05 ------------------------------------------------------------------------------
    x = Ex("05-remission-escitalopram.json", "ex05-patient")
    x.patient("Moreau", "Claire", "female", "1995-01-25")
    x.condition("ex05-mdd", SNOMED, "36923009", "Major depression, single episode", "2025-07-15")
    s1, e1 = "2025-08-04", "2025-08-31"  # 10 mg, 27 days (dates inclusive: 28 days) = 4 weeks
    s2, e2 = "2025-09-01", "2025-12-15"  # 20 mg, 105 days = 15.0 weeks
    x.phq9("ex05-phq-1", "2025-07-28", 19)
    x.phq9("ex05-phq-2", "2025-09-01", 14)
    x.phq9("ex05-phq-3", "2025-10-13", 7, "qty")
    x.phq9("ex05-phq-4", e2, 3)
    x.med_statement("ex05-ms-escitalopram-10", cc_ingredient("escitalopram"), s1, e1, [dosage_mg(10)])
    x.med_statement("ex05-ms-escitalopram-20", cc_ingredient("escitalopram"), s2, e2, [dosage_mg(20)])
    x.trial(
        "escitalopram",
        s1,
        e2,
        "adequate",
        "remission",
        max_dose=20,
        weeks_at_adequate=weeks(s1, e2),
        improvement=84.2,
        baseline=("2025-07-28", 19),
        end_score=(e2, 3),
    )
    x.write(exp, trd_status="does_not_meet", failed_adequate_trials=0)

    # 06 ------------------------------------------------------------------------------
    x = Ex("06-missing-doses-insufficient-data.json", "ex06-patient")
    x.patient("Kowalski", "Piotr", "male", "1968-04-08")
    x.condition(
        "ex06-mdd",
        ICD10CM,
        "F33.2",
        "Major depressive disorder, recurrent severe without psychotic features",
        "2025-02-01",
    )
    s1, e1 = "2025-02-17", "2025-04-21"  # sertraline, no dose, 63 days = 9.0 weeks
    s2, e2 = "2025-04-22", "2025-07-01"  # bupropion, no dose, 70 days = 10.0 weeks
    x.phq9("ex06-phq-1", "2025-02-10", 21)
    x.phq9("ex06-phq-2", "2025-03-24", 20)
    x.phq9("ex06-phq-3", e1, 19)
    x.phq9("ex06-phq-4", "2025-05-27", 18)
    x.phq9("ex06-phq-5", e2, 17)
    x.med_statement("ex06-ms-sertraline", cc_ingredient("sertraline"), s1, e1, None)
    x.med_statement("ex06-ms-bupropion", cc_ingredient("bupropion"), s2, e2, None)
    x.trial(
        "sertraline",
        s1,
        e1,
        "unknown",
        "nonresponse",
        max_dose=None,
        weeks_at_adequate=None,
        improvement=9.5,
        baseline=("2025-02-10", 21),
        end_score=(e1, 19),
        weeks_on_drug=9.0,
    )
    x.trial(
        "bupropion",
        s2,
        e2,
        "unknown",
        "nonresponse",
        max_dose=None,
        weeks_at_adequate=None,
        improvement=10.5,
        baseline=(e1, 19),
        end_score=(e2, 17),
        weeks_on_drug=10.0,
    )
    x.write(exp, trd_status="insufficient_data", failed_adequate_trials=0, possible_failed_trials=2)

    # 07 ------------------------------------------------------------------------------
    x = Ex("07-product-codes-text-dosing.json", "ex07-patient", btype="transaction")
    x.patient("Adeyemi", "Tunde", "male", "1988-12-01")
    x.practitioner()
    x.condition("ex07-mdd", ICD10CM, "F33.1", "Major depressive disorder, recurrent, moderate", "2025-03-10")
    s1, e1 = "2025-03-24", "2025-05-26"  # sertraline 2 x 50 mg tablets = 100 mg, 63 days = 9.0 weeks
    s2, e2 = "2025-05-27", "2025-08-05"  # bupropion XL 300 mg, 70 days = 10.0 weeks
    x.phq9("ex07-phq-1", "2025-03-17", 17)
    x.phq9("ex07-phq-2", "2025-04-21", 16)
    x.phq9("ex07-phq-3", e1, 15, "qty")
    x.phq9("ex07-phq-4", "2025-06-30", 14)
    x.phq9("ex07-phq-5", e2, 13, "qty")
    x.med_request(
        "ex07-mr-sertraline",
        cc_product("312941"),
        s1,
        [{"text": "Take 2 tablets by mouth once daily"}],
        validity=(s1, e1),
        dispense_qty=(126, "tablet"),
    )
    x.med_request(
        "ex07-mr-bupropion",
        cc_product("993541"),
        s2,
        [{"text": "300 mg daily"}],
        validity=(s2, e2),
        dispense_qty=(140, "tablet"),
    )
    x.trial(
        "sertraline",
        s1,
        e1,
        "adequate",
        "nonresponse",
        max_dose=100,
        weeks_at_adequate=9.0,
        improvement=11.8,
        baseline=("2025-03-17", 17),
        end_score=(e1, 15),
    )
    x.trial(
        "bupropion",
        s2,
        e2,
        "adequate",
        "nonresponse",
        max_dose=300,
        weeks_at_adequate=10.0,
        improvement=13.3,
        baseline=(e1, 15),
        end_score=(e2, 13),
    )
    x.write(exp, trd_status="meets", failed_adequate_trials=2)

    # 08 ------------------------------------------------------------------------------
    x = Ex("08-messy-record.json", "ex08-patient")
    x.patient("Brennan", "Siobhan", "female", "1976-07-14")
    x.practitioner()
    x.condition("ex08-mdd", ICD10CM, "F33.1", "Major depressive disorder, recurrent, moderate", "2025-06-02")
    s1, e1 = "2025-06-16", "2025-08-25"  # fluoxetine 20 mg BID = 40 mg/day, 70 days = 10.0 weeks
    s2, e2 = "2025-09-01", "2026-01-05"  # venlafaxine 225 mg, 126 days = 18.0 weeks
    x.phq9("ex08-phq-1", "2025-06-09", 21)
    x.phq9("ex08-phq-2", "2025-07-21", 20)
    x.phq9("ex08-phq-3", e1, 19)
    x.phq9("ex08-phq-4", "2025-10-13", 18)
    x.phq9("ex08-phq-5", "2025-12-01", 17)
    x.phq9("ex08-phq-6", e2, 16)
    x.med_statement(
        "ex08-ms-fluoxetine",
        cc_ingredient("fluoxetine"),
        s1,
        e1,
        [dosage_mg(20, code="BID", text="20 mg twice daily")],
    )
    x.med_statement(
        "ex08-ms-venlafaxine",
        cc_product("808748"),
        s2,
        e2,
        [dosage_units(1, "tablet", text="Take 1 tablet (225 mg) by mouth once daily")],
    )
    # --- deliberately broken material (each must be tolerated, none may change the result)
    x.entries.append({"fullUrl": "https://example.org/fhir/Observation/ex08-deleted"})  # entry without resource
    x.med_statement(
        "ex08-ms-unknown-code",
        {"coding": [{"system": "http://example.org/local-formulary", "code": "LF-99812"}]},
        "2025-07-01",
        "2025-08-15",
        [dosage_mg(10)],
    )
    bad_obs = {
        "resourceType": "Observation",
        "id": "ex08-phq-na",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "44261-6"}]},
        "subject": x.subj,
        "effectiveDateTime": "2026-01-06T10:30:00-05:00",
        "valueString": "n/a",
    }
    x.add(bad_obs)
    x.med_request(
        "ex08-mr-venlafaxine-5000",
        cc_ingredient("venlafaxine"),
        s2,
        [dosage_mg(2500, freq=2, text="2500 mg twice daily", bounds=(s2, e2))],
    )
    x.med_statement(
        "ex08-ms-fluoxetine-inverted",
        cc_ingredient("fluoxetine"),
        "2025-08-10",
        "2025-07-10",
        [dosage_mg(40)],
    )
    future = {
        "resourceType": "Observation",
        "id": "ex08-phq-future",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "44261-6"}]},
        "subject": x.subj,
        "effectiveDateTime": "2026-01-16T10:30:00-05:00",
        "valueInteger": 2,
    }
    x.add(future)
    x.add({"resourceType": "MoodRingReading", "id": "ex08-unknown-type", "subject": x.subj, "colour": "blue"})
    x.broken_ids.add("MoodRingReading/ex08-unknown-type")
    x.med_statement(
        "ex08-ms-missing-medication",
        {},
        "2025-09-15",
        "2025-11-15",
        None,
        ref="Medication/ex08-med-not-in-bundle",
    )
    x.trial(
        "fluoxetine",
        s1,
        e1,
        "adequate",
        "nonresponse",
        max_dose=40,
        weeks_at_adequate=10.0,
        improvement=9.5,
        baseline=("2025-06-09", 21),
        end_score=(e1, 19),
    )
    x.trial(
        "venlafaxine",
        s2,
        e2,
        "adequate",
        "nonresponse",
        max_dose=225,
        weeks_at_adequate=18.0,
        improvement=15.8,
        baseline=(e1, 19),
        end_score=(e2, 16),
    )
    x.write(exp, trd_status="meets", failed_adequate_trials=2)

    # 09 ------------------------------------------------------------------------------
    x = Ex("09-dispense-only-history.json", "ex09-patient", btype="searchset", url_style="uuid")
    x.patient("Castillo", "Rosa", "female", "1982-02-17")
    x.condition("ex09-mdd", SNOMED, "66344007", "Recurrent major depression", "2025-02-15")
    f0 = "2025-03-03"  # fluoxetine fills 03-03, 04-02, 05-02, 30 x 20 mg each -> covered to 05-31 (90 days)
    for i in range(3):
        x.dispense(f"ex09-md-fluoxetine-{i + 1}", "310385", add(f0, 30 * i), 30, 30, "capsule")
    e1 = add(f0, 90)  # 2025-06-01: first day without supply; 90 days = 12.9 weeks
    m0 = e1  # mirtazapine fills 06-01 and 07-06, 35 x 30 mg each -> covered to 08-09 (70 days)
    for i in range(2):
        x.dispense(
            f"ex09-md-mirtazapine-{i + 1}",
            "314111",
            add(m0, 35 * i),
            35,
            35,
            "tablet",
            text="Take 1 tablet by mouth at bedtime",
        )
    e2 = add(m0, 70)  # 2025-08-10; 70 days = 10.0 weeks
    x.phq9("ex09-phq-1", "2025-02-24", 17, "qty")
    x.phq9("ex09-phq-2", "2025-04-07", 17)
    x.phq9("ex09-phq-3", e1, 16)
    x.phq9("ex09-phq-4", "2025-07-07", 15)
    x.phq9("ex09-phq-5", e2, 14)
    x.trial(
        "fluoxetine",
        f0,
        e1,
        "adequate",
        "nonresponse",
        max_dose=20,
        weeks_at_adequate=weeks(f0, e1),
        improvement=5.9,
        baseline=("2025-02-24", 17),
        end_score=(e1, 16),
    )
    x.trial(
        "mirtazapine",
        m0,
        e2,
        "adequate",
        "nonresponse",
        max_dose=30,
        weeks_at_adequate=weeks(m0, e2),
        improvement=12.5,
        baseline=(e1, 16),
        end_score=(e2, 14),
    )
    x.write(exp, trd_status="meets", failed_adequate_trials=2)

    # 10 ------------------------------------------------------------------------------
    x = Ex("10-augmentation-and-hypnotic-trazodone.json", "ex10-patient")
    x.patient("Fischer", "Jonas", "male", "1973-05-21")
    x.practitioner()
    x.condition(
        "ex10-mdd",
        ICD10CM,
        "F33.2",
        "Major depressive disorder, recurrent severe without psychotic features",
        "2025-04-01",
    )
    s, e = "2025-04-21", "2025-07-14"  # venlafaxine 225 mg, 84 days = 12.0 weeks
    sa, ea = "2025-06-02", "2025-07-14"  # aripiprazole 5 mg from week 6, 42 days = 6.0 weeks
    st, et = "2025-05-05", "2025-07-14"  # trazodone 50 mg at bedtime, 70 days
    x.phq9("ex10-phq-1", "2025-04-14", 19)
    x.phq9("ex10-phq-2", sa, 18)
    x.phq9("ex10-phq-3", e, 16)
    x.med_statement("ex10-ms-venlafaxine", cc_ingredient("venlafaxine"), s, e, [dosage_mg(225)])
    x.med_request(
        "ex10-mr-aripiprazole",
        cc_product("402131"),
        sa,
        [dosage_mg(5, text="5 mg once daily (adjunct to venlafaxine)", bounds=(sa, ea))],
    )
    mr = x.med_request(
        "ex10-mr-trazodone",
        cc_product("856377"),
        st,
        [dosage_mg(50, text="50 mg at bedtime for sleep", bounds=(st, et), when_hs=True)],
    )
    mr["reasonCode"] = [
        {"coding": [{"system": SNOMED, "code": "193462001", "display": "Insomnia"}], "text": "Insomnia"}
    ]
    x.trial(
        "venlafaxine",
        s,
        e,
        "adequate",
        "nonresponse",
        max_dose=225,
        weeks_at_adequate=12.0,
        improvement=15.8,
        baseline=("2025-04-14", 19),
        end_score=(e, 16),
        augmentations=[{"ingredient": "aripiprazole", "start": sa, "end": ea, "daily_dose_mg": 5}],
    )
    x.write(
        exp,
        trd_status="does_not_meet",
        failed_adequate_trials=1,
        not_trials=["aripiprazole (augmentation of venlafaxine)", "trazodone 50 mg/day (hypnotic dose)"],
    )

    # 11 ------------------------------------------------------------------------------
    x = Ex("11-contained-medication-and-allergy-intolerance.json", "ex11-patient")
    x.patient("Tanaka", "Hiro", "male", "1992-10-03")
    x.practitioner()
    x.condition(
        "ex11-mdd",
        ICD10CM,
        "F32.2",
        "Major depressive disorder, single episode, severe without psychotic features",
        "2025-05-01",
    )
    s1, e1 = "2025-05-12", "2025-07-14"  # escitalopram 2 x 10 mg = 20 mg, 63 days = 9.0 weeks
    s2, e2 = "2025-07-21", "2025-07-31"  # vortioxetine 10 mg, 10 days, stopped (nausea; AllergyIntolerance)
    x.phq9("ex11-phq-1", "2025-05-05", 16)
    x.phq9("ex11-phq-2", "2025-06-09", 13)
    x.phq9("ex11-phq-3", e1, 10)
    med1 = {
        "resourceType": "Medication",
        "id": "med1",
        "code": cc_product("349332"),
        "form": {"coding": [{"system": SNOMED, "code": "421026006", "display": "Oral tablet"}]},
    }
    x.med_statement(
        "ex11-ms-escitalopram",
        {},
        s1,
        e1,
        [dosage_units(2, "tablet", text="Take 2 tablets by mouth once daily")],
        contained=[med1],
        ref="#med1",
    )
    x.med_request("ex11-mr-vortioxetine", cc_product("1439808"), s2, [dosage_mg(10, bounds=(s2, e2))], status="stopped")
    x.add(
        {
            "resourceType": "AllergyIntolerance",
            "id": "ex11-ai-vortioxetine",
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                        "code": "active",
                    }
                ]
            },
            "verificationStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                        "code": "confirmed",
                    }
                ]
            },
            "type": "intolerance",
            "category": ["medication"],
            "criticality": "low",
            "code": cc_ingredient("vortioxetine"),
            "patient": x.subj,
            "onsetDateTime": "2025-07-29",
            "recordedDate": e2,
            "reaction": [
                {
                    "manifestation": [
                        {
                            "coding": [{"system": SNOMED, "code": "422587007", "display": "Nausea"}],
                            "text": "Nausea",
                        }
                    ],
                    "severity": "moderate",
                }
            ],
        }
    )
    x.trial(
        "escitalopram",
        s1,
        e1,
        "adequate",
        "partial_response",
        max_dose=20,
        weeks_at_adequate=9.0,
        improvement=37.5,
        baseline=("2025-05-05", 16),
        end_score=(e1, 10),
    )
    x.trial(
        "vortioxetine",
        s2,
        e2,
        "inadequate_duration",
        "intolerance",
        max_dose=10,
        weeks_at_adequate=1.4,
        improvement=None,
    )
    x.write(exp, trd_status="does_not_meet", failed_adequate_trials=1)

    # 12 ------------------------------------------------------------------------------
    x = Ex("12-dose-escalation-one-trial.json", "ex12-patient")
    x.patient("Osei", "Kwame", "male", "1966-08-28")
    x.practitioner()
    x.condition("ex12-mdd", SNOMED, "370143000", "Major depressive disorder", "2025-01-06")
    a, b, c, d = "2025-01-20", "2025-02-17", "2025-03-17", "2025-04-27"
    # sertraline 50 mg 01-20..02-16 (4 wk), 100 mg 02-17..03-16 (4 wk), 150 mg 03-17..04-27 (6 wk)
    s2, e2 = "2025-04-28", "2025-06-23"  # mirtazapine 45 mg, 56 days = 8.0 weeks
    x.phq9("ex12-phq-1", "2025-01-13", 22)
    x.phq9("ex12-phq-2", "2025-02-17", 21)
    x.phq9("ex12-phq-3", "2025-03-17", 20)
    x.phq9("ex12-phq-4", d, 19)
    x.phq9("ex12-phq-5", "2025-05-26", 18)
    x.phq9("ex12-phq-6", e2, 17)
    x.med_request("ex12-mr-sertraline-50", cc_ingredient("sertraline"), a, [dosage_mg(50, bounds=(a, add(b, -1)))])
    x.med_request(
        "ex12-mr-sertraline-100",
        cc_ingredient("sertraline"),
        b,
        [
            {
                "text": "50 mg twice daily",
                "timing": {"repeat": {"boundsPeriod": {"start": b, "end": add(c, -1)}}},
            }
        ],
    )
    x.med_request(
        "ex12-mr-sertraline-150",
        cc_product("312941"),
        c,
        [dosage_units(3, "tablet", text="Take 3 tablets (150 mg) by mouth once daily", bounds=(c, d))],
    )
    x.med_statement(
        "ex12-ms-mirtazapine",
        cc_product("311726"),
        s2,
        e2,
        [dosage_units(1, "tablet", text="Take 1 tablet (45 mg) by mouth at bedtime")],
    )
    x.trial(
        "sertraline",
        a,
        d,
        "adequate",
        "nonresponse",
        max_dose=150,
        weeks_at_adequate=weeks(a, d),
        improvement=13.6,
        baseline=("2025-01-13", 22),
        end_score=(d, 19),
    )
    x.trial(
        "mirtazapine",
        s2,
        e2,
        "adequate",
        "nonresponse",
        max_dose=45,
        weeks_at_adequate=8.0,
        improvement=10.5,
        baseline=(d, 19),
        end_score=(e2, 17),
    )
    x.write(exp, trd_status="meets", failed_adequate_trials=2)

    # 13 ------------------------------------------------------------------------------
    x = Ex("13-fluoxetine-gaps-10-vs-60-days.json", "ex13-patient", url_style="uuid")
    x.patient("Silva", "Beatriz", "female", "1986-12-09")
    x.condition("ex13-mdd", ICD10CM, "F33.1", "Major depressive disorder, recurrent, moderate", "2025-02-01")
    a1, a2 = "2025-02-10", "2025-03-10"  # fluoxetine 20 mg, 28 days
    b1, b2 = "2025-03-20", "2025-05-15"  # fluoxetine 20 mg, 56 days; gap 03-10 -> 03-20 = 10 days
    c1, c2 = "2025-07-14", "2025-09-08"  # fluoxetine 40 mg, 56 days; gap 05-15 -> 07-14 = 60 days
    x.phq9("ex13-phq-1", "2025-02-03", 18)
    x.phq9("ex13-phq-2", "2025-03-17", 17)
    x.phq9("ex13-phq-3", b2, 16)
    x.phq9("ex13-phq-4", "2025-07-10", 17)
    x.phq9("ex13-phq-5", "2025-08-11", 12)
    x.phq9("ex13-phq-6", c2, 7)
    x.med_statement("ex13-ms-fluoxetine-a", cc_ingredient("fluoxetine"), a1, a2, [dosage_mg(20)])
    x.med_statement("ex13-ms-fluoxetine-b", cc_ingredient("fluoxetine"), b1, b2, [dosage_mg(20)])
    x.med_statement(
        "ex13-ms-fluoxetine-c",
        cc_product("310385"),
        c1,
        c2,
        [dosage_units(2, "capsule", text="Take 2 capsules (40 mg) by mouth once daily")],
    )
    assert days_between(a2, b1) == 10 and days_between(b2, c1) == 60
    x.trial(
        "fluoxetine",
        a1,
        b2,
        "adequate",
        "nonresponse",
        max_dose=20,
        weeks_at_adequate=12.0,
        improvement=11.1,
        baseline=("2025-02-03", 18),
        end_score=(b2, 16),
        weeks_span_including_gap=weeks(a1, b2),
    )
    x.trial(
        "fluoxetine",
        c1,
        c2,
        "adequate",
        "response",
        max_dose=40,
        weeks_at_adequate=8.0,
        improvement=58.8,
        baseline=("2025-07-10", 17),
        end_score=(c2, 7),
    )
    x.write(exp, trd_status="does_not_meet", failed_adequate_trials=1)

    # 14 ------------------------------------------------------------------------------
    x = Ex("14-prior-episode-trials-excluded.json", "ex14-patient")
    x.patient("Petrov", "Anna", "female", "1975-03-30")
    x.practitioner()
    x.condition(
        "ex14-mdd-2022",
        ICD10CM,
        "F33.1",
        "Major depressive disorder, recurrent, moderate",
        "2022-01-10",
        status="resolved",
        abatement="2022-12-01",
    )
    x.condition(
        "ex14-mdd-current",
        ICD10CM,
        "F33.2",
        "Major depressive disorder, recurrent severe without psychotic features",
        "2025-05-01",
    )
    p1, q1 = "2022-01-24", "2022-04-04"  # prior episode: citalopram 40 mg, 70 days, nonresponse
    p2, q2 = "2022-04-05", "2022-06-14"  # prior episode: sertraline 150 mg, 70 days, nonresponse
    s, e = "2025-05-19", "2025-07-28"  # current episode: bupropion 300 mg, 70 days = 10.0 weeks
    x.phq9("ex14-phq-1", "2022-01-17", 18)
    x.phq9("ex14-phq-2", q1, 17)
    x.phq9("ex14-phq-3", q2, 16)
    x.phq9("ex14-phq-4", "2025-05-12", 20)
    x.phq9("ex14-phq-5", "2025-06-23", 19)
    x.phq9("ex14-phq-6", e, 18)
    x.med_statement("ex14-ms-citalopram-2022", cc_ingredient("citalopram"), p1, q1, [dosage_mg(40)])
    x.med_statement("ex14-ms-sertraline-2022", cc_ingredient("sertraline"), p2, q2, [dosage_mg(150)])
    x.med_statement(
        "ex14-ms-bupropion",
        cc_ingredient("bupropion"),
        s,
        e,
        [dosage_mg(150, freq=2, text="150 mg twice daily")],
    )
    x.trial(
        "bupropion",
        s,
        e,
        "adequate",
        "nonresponse",
        max_dose=300,
        weeks_at_adequate=10.0,
        improvement=10.0,
        baseline=("2025-05-12", 20),
        end_score=(e, 18),
    )
    x.write(
        exp,
        trd_status="does_not_meet",
        failed_adequate_trials=1,
        prior_episode_trials_not_counted=[
            "citalopram 2022 (adequate, nonresponse)",
            "sertraline 2022 (adequate, nonresponse)",
        ],
    )
    return exp


if __name__ == "__main__":
    expected = build()
    (HERE / "expected.json").write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {len(expected)} bundles + expected.json")
