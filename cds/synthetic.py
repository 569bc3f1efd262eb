"""Deterministic synthetic FHIR R4 patients with treatment-resistant-depression histories.

Used by the tests (cross-checking the rule evaluators on many patients) and by the benchmarks.
Stdlib only, plus the project's RxNorm product catalog. The same seed always gives the same bundle:
every random choice comes from one ``random.Random(seed)`` and every date is relative to ``now``.
``history_scale`` multiplies the length of the history (more episodes, trials and visits) at the
same density per month; scale 1 is about 50 medication records, 40 observations and 20 conditions.
About 2 % of records are malformed on purpose (implausible dose, period that ends before it starts,
future date, missing resourceType, non-numeric score).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from datetime import date, timedelta
from functools import cache
from typing import Any

from cds.knowledge.loader import default_rules_dir

Json = dict[str, Any]

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
UCUM = "http://unitsofmeasure.org"
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem/"
DEFAULT_NOW = date(2026, 1, 15)
DAYS_PER_SCALE = 730  # history length at history_scale=1
MALFORMED_RATE = 0.02

# ingredient -> (RxNorm ingredient code, daily-dose ladder in mg, minimum adequate daily dose in mg)
ANTIDEPRESSANTS: dict[str, tuple[str, tuple[float, ...], float]] = {
    "sertraline": ("36437", (25, 50, 100, 150, 200), 50),
    "escitalopram": ("321988", (5, 10, 20), 10),
    "citalopram": ("2556", (10, 20, 40), 20),
    "fluoxetine": ("4493", (10, 20, 40, 60), 20),
    "paroxetine": ("32937", (10, 20, 40), 20),
    "venlafaxine": ("39786", (75, 150, 225), 150),
    "duloxetine": ("72625", (30, 60, 120), 60),
    "bupropion": ("42347", (150, 300, 450), 300),
    "mirtazapine": ("15996", (15, 30, 45), 15),
    "vortioxetine": ("1455099", (5, 10, 20), 10),
    "nortriptyline": ("7531", (25, 50, 75, 100), 75),
    "amitriptyline": ("704", (50, 100, 150), 150),
    "trazodone": ("10737", (150, 300), 300),
    "phenelzine": ("8123", (15, 30, 45, 60), 45),
}
AUGMENTERS: dict[str, tuple[str, tuple[float, ...]]] = {
    "aripiprazole": ("89013", (2, 5, 10)),
    "lithium": ("6448", (600, 900)),
    "quetiapine": ("51272", (150, 300)),
}
OTHER_MEDS: dict[str, tuple[str, float]] = {  # not psychiatric: the engine must ignore them
    "lisinopril": ("29046", 10),
    "metformin": ("6809", 1000),
    "atorvastatin": ("83367", 20),
    "amlodipine": ("17767", 5),
    "omeprazole": ("7646", 20),
}
CHRONIC = [
    ("I10", "Essential (primary) hypertension"),
    ("E11.9", "Type 2 diabetes mellitus without complications"),
    ("F41.1", "Generalized anxiety disorder"),
    ("E03.9", "Hypothyroidism, unspecified"),
    ("E78.5", "Hyperlipidemia, unspecified"),
    ("G47.00", "Insomnia, unspecified"),
]
ACUTE = [
    ("J06.9", "Acute upper respiratory infection, unspecified"),
    ("M54.50", "Low back pain, unspecified"),
    ("J01.90", "Acute sinusitis, unspecified"),
    ("R51.9", "Headache, unspecified"),
    ("S93.401A", "Sprain of unspecified ligament of ankle, initial encounter"),
]
MDD_CODES = [
    ("F32.1", "Major depressive disorder, single episode, moderate"),
    ("F32.2", "Major depressive disorder, single episode, severe without psychotic features"),
    ("F33.1", "Major depressive disorder, recurrent, moderate"),
    ("F33.2", "Major depressive disorder, recurrent severe without psychotic features"),
]
ADVERSE_REASON: Json = {
    "coding": [{"system": SNOMED, "code": "62014003", "display": "Adverse reaction to drug"}],
    "text": "Adverse reaction to drug",
}
_SOLID_FORMS = {
    "Oral Tablet",
    "Oral Capsule",
    "Extended Release Oral Tablet",
    "Extended Release Oral Capsule",
    "Delayed Release Oral Capsule",
    "Disintegrating Oral Tablet",
}


@cache
def products() -> dict[str, tuple[tuple[str, str, float], ...]]:
    """ingredient -> (rxcui, display, strength mg) of single-ingredient solid oral products in the catalog."""
    out: dict[str, list[tuple[str, str, float]]] = {}
    path = default_rules_dir() / "catalog" / "rxnorm-antidepressant-products.csv"
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            name, display = row["ingredients"], row["display"]
            if ";" in name or row["dose_form"] not in _SOLID_FORMS or not row["strength_mg"]:
                continue
            if "hydrobromide" in display.lower() or "mesylate" in display.lower() or "Cessation" in display:
                continue
            out.setdefault(name, []).append((row["rxcui"], display, float(row["strength_mg"])))
    return {k: tuple(sorted(v)) for k, v in out.items()}


def _cc(system: str, code: str, display: str) -> Json:
    coding: Json = {"coding": [{"system": system, "code": code, "display": display}]}
    return {**coding, "text": display} if system == RXNORM else coding


def _code(system: str, code: str) -> Json:
    return {"coding": [{"system": system, "code": code}]}


def _qty(value: float, unit: str, code: str) -> Json:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


class _Builder:
    """Accumulates one patient's resources; ids are the patient id plus a running counter."""

    def __init__(self, seed: int, now: date) -> None:
        self.rng = random.Random(seed)
        self.now, self.pid = now, f"syn-{seed}"
        self.resources: list[Json] = []

    def add(self, rtype: str, body: Json) -> Json:
        res = {
            "resourceType": rtype,
            "id": f"{self.pid}-{len(self.resources) + 1}",
            "subject": {"reference": f"Patient/{self.pid}"},
            **body,
        }
        if rtype == "MedicationDispense":
            res.setdefault("status", "completed")
        self.resources.append(res)
        return res

    # -- conditions ------------------------------------------------------------------------------------
    def condition(
        self,
        system: str,
        code: str,
        display: str,
        onset: date,
        *,
        status: str = "active",
        verification: str = "confirmed",
        category: str = "problem-list-item",
        recorded: date | None = None,
        abated: date | None = None,
    ) -> None:
        body: Json = {
            "clinicalStatus": _code(TERMINOLOGY + "condition-clinical", status),
            "verificationStatus": _code(TERMINOLOGY + "condition-ver-status", verification),
            "category": [_code(TERMINOLOGY + "condition-category", category)],
            "code": _cc(system, code, display),
            "onsetDateTime": onset.isoformat(),
            "recordedDate": (recorded or onset).isoformat(),
        }
        if abated is not None:
            body["abatementDateTime"] = abated.isoformat()
        self.add("Condition", body)

    # -- observations ----------------------------------------------------------------------------------
    def observation(self, loinc: str, display: str, when: date, value: Json, category: str = "survey") -> None:
        stamp = f"{when.isoformat()}T{self.rng.randint(8, 17):02d}:{self.rng.choice(('00', '15', '30'))}:00-05:00"
        self.add(
            "Observation",
            {
                "status": "final",
                "category": [_code(TERMINOLOGY + "observation-category", category)],
                "code": _cc(LOINC, loinc, display),
                "effectiveDateTime": stamp,
                **value,
            },
        )

    def phq9(self, when: date, score: int) -> None:
        if when > self.now:
            return
        score = max(0, min(27, score))
        roll = self.rng.random()
        value: Json = (
            {"valueInteger": score}
            if roll < 0.85
            else {"valueString": str(score)}
            if roll > 0.95
            else {"valueQuantity": _qty(score, "{score}", "{score}")}
        )
        self.observation("44261-6", "PHQ-9 total score [Reported]", when, value)

    # -- medications -----------------------------------------------------------------------------------
    def concept(self, name: str, code: str, daily: float) -> tuple[Json, float | None]:
        """A product concept (with its strength) when one divides the dose evenly, else the ingredient."""
        fits = [p for p in products().get(name, ()) if daily / p[2] in (1, 2, 3, 4)]
        if fits and self.rng.random() < 0.55:
            rxcui, display, strength = self.rng.choice(fits)
            return _cc(RXNORM, rxcui, display), strength
        return _cc(RXNORM, code, name), None

    def dosage(self, daily: float, strength: float | None, bounds: tuple[date, date] | None) -> list[Json]:
        rng = self.rng
        if rng.random() < 0.06:
            return []  # no dosage recorded
        twice = daily >= 100 and rng.random() < 0.3
        per = daily / 2 if twice else daily
        freq_text = "twice daily" if twice else "once daily"
        if rng.random() < 0.12:  # free text only
            return [{"text": f"{_num(per)} mg {freq_text}"}]
        repeat: Json = {"frequency": 2 if twice else 1, "period": 1, "periodUnit": "d"}
        if bounds is not None:
            repeat["boundsPeriod"] = {"start": bounds[0].isoformat(), "end": bounds[1].isoformat()}
        if strength is not None and rng.random() < 0.6:
            dose, text = (
                _qty(_num(per / strength), "tablet", "{tablet}"),
                f"Take {_num(per / strength)} tablet(s)",
            )
        else:
            dose, text = _qty(_num(per), "mg", "mg"), f"{_num(per)} mg"
        return [
            {
                "text": f"{text} by mouth {freq_text}",
                "timing": {"repeat": repeat},
                "doseAndRate": [{"doseQuantity": dose}],
            }
        ]

    def course(
        self,
        name: str,
        code: str,
        steps: list[tuple[date, date, float]],
        *,
        ongoing: bool = False,
        adverse: bool = False,
        style: str | None = None,
    ) -> None:
        """One continuous course of a drug as successive dose steps (start, end, mg/day)."""
        rng = self.rng
        style = style or rng.choices(["request", "statement", "dispense", "both"], [3, 2, 2, 4])[0]
        last: Json | None = None
        for i, (start, end, daily) in enumerate(steps):
            final = i == len(steps) - 1
            concept, strength = self.concept(name, code, daily)
            days = (end - start).days + 1
            if style == "statement":
                period = (
                    {"start": start.isoformat()}
                    if ongoing and final
                    else {"start": start.isoformat(), "end": end.isoformat()}
                )
                last = self.add(
                    "MedicationStatement",
                    {
                        "status": "active" if ongoing and final else "completed",
                        "medicationCodeableConcept": concept,
                        "effectivePeriod": period,
                        "dosage": self.dosage(daily, strength, None),
                    },
                )
            if style in ("request", "both"):
                bounded = style == "request" and rng.random() < 0.5
                body: Json = {
                    "status": "active" if ongoing and final else "completed",
                    "intent": "order",
                    "medicationCodeableConcept": concept,
                    "authoredOn": start.isoformat(),
                    "dosageInstruction": self.dosage(daily, strength, (start, end) if bounded else None),
                }
                if not bounded:
                    body["dispenseRequest"] = {"expectedSupplyDuration": _qty(days, "days", "d")}
                last = self.add("MedicationRequest", body)
            if style in ("dispense", "both"):
                if strength is None:
                    concept, strength = self.concept(name, code, daily)
                if strength is None:
                    continue
                for fill in range(0, days, 30):
                    supply = min(30, days - fill)
                    self.add(
                        "MedicationDispense",
                        {
                            "medicationCodeableConcept": concept,
                            "quantity": _qty(_num(daily / strength * supply), "tablet", "{tablet}"),
                            "daysSupply": _qty(supply, "days", "d"),
                            "whenHandedOver": (start + timedelta(days=fill)).isoformat(),
                        },
                    )
        if adverse:
            if last is None:  # dispense-only history: the stop is recorded as a statement
                last = self.add(
                    "MedicationStatement",
                    {
                        "medicationCodeableConcept": _cc(RXNORM, code, name),
                        "effectivePeriod": {
                            "start": steps[0][0].isoformat(),
                            "end": steps[-1][1].isoformat(),
                        },
                    },
                )
            last["status"] = "stopped"
            last["statusReason"] = [ADVERSE_REASON] if last["resourceType"] == "MedicationStatement" else ADVERSE_REASON


def _trial(b: _Builder, name: str, start: date, score: int, resistance: float, sparse: bool) -> tuple[date, int]:
    """One antidepressant trial with its PHQ-9 scores; returns (end date, last score)."""
    rng, now = b.rng, b.now
    code, ladder, minimum = ANTIDEPRESSANTS[name]
    adverse = rng.random() < 0.1
    weeks = rng.randint(1, 4) if adverse else rng.choice((2, 4, 6, 6, 8, 8, 8, 10, 12, 12, 16))
    end = start + timedelta(weeks=weeks, days=-1)
    ongoing = end >= now
    end = min(end, now)
    adequate = [d for d in ladder if d >= minimum]
    target = rng.choice(adequate) if rng.random() < 0.75 else rng.choice(ladder[: ladder.index(adequate[0]) or 1])
    steps: list[tuple[date, date, float]] = []
    step_start = start
    titration = [d for d in ladder if d < target][-rng.randint(1, 2) :] if rng.random() < 0.5 else []
    for dose in titration:
        step_end = min(step_start + timedelta(days=rng.randint(7, 21)), end)
        if step_end >= end:
            break
        steps.append((step_start, step_end, dose))
        step_start = step_end + timedelta(days=1)
    steps.append((step_start, end, target))
    b.course(name, code, steps, ongoing=ongoing, adverse=adverse)
    # outcome: improvement fraction from baseline; resistant patients mostly fail
    if rng.random() < 0.35 + 0.6 * resistance:
        improvement = rng.uniform(-0.1, 0.24) if rng.random() < 0.6 else rng.uniform(0.25, 0.49)
    else:
        improvement = rng.uniform(0.5, 1.0)
    final = round(score * (1 - improvement * min(1.0, weeks / 6)))
    if not (sparse and rng.random() < 0.4):
        b.phq9(start - timedelta(days=rng.randint(0, 14)), score)
    if weeks >= 6 and rng.random() < 0.6:
        b.phq9(start + timedelta(days=28), round((score + final) / 2) + rng.randint(-2, 2))
    if not (sparse and rng.random() < 0.4):
        b.phq9(end + timedelta(days=rng.randint(-7, 7)), final)
    if weeks >= 6 and target >= minimum and rng.random() < 0.25:  # augmentation over the trial's second half
        aug = rng.choice(sorted(AUGMENTERS))
        aug_code, doses = AUGMENTERS[aug]
        b.course(aug, aug_code, [(start + timedelta(weeks=weeks // 2), end, rng.choice(doses))], ongoing=ongoing)
    if rng.random() < 0.4:
        b.observation("70274-6", "GAD-7 total score [Reported]", start, {"valueInteger": rng.randint(3, 18)})
    return end, max(0, final)


def generate_patient(seed: int, *, history_scale: int = 1, now: date = DEFAULT_NOW) -> Json:
    """One patient's FHIR R4 Bundle (type collection), fully determined by (seed, history_scale, now)."""
    b = _Builder(seed, now)
    rng = b.rng
    span = DAYS_PER_SCALE * history_scale + rng.randint(-60, 60)
    first = now - timedelta(days=span)
    resistance, sparse = rng.random() ** 0.5, rng.random() < 0.25
    b.resources.append(
        {
            "resourceType": "Patient",
            "id": b.pid,
            "gender": rng.choice(("female", "male")),
            "identifier": [{"system": "https://example.org/mrn", "value": b.pid.upper()}],
            "name": [{"family": f"Synthetic{seed}", "given": [rng.choice(("Alex", "Sam", "Jo"))]}],
            "birthDate": (first - timedelta(days=rng.randint(18 * 365, 60 * 365))).isoformat(),
        }
    )
    # chronic problems with their (non-psychiatric) treatment, and acute problems at the same monthly density
    for code, display in rng.sample(CHRONIC, rng.randint(2, 4)):
        b.condition(ICD10, code, display, first - timedelta(days=rng.randint(30, 2000)))
    for name in rng.sample(sorted(OTHER_MEDS), rng.randint(2, 3)):
        rx, dose = OTHER_MEDS[name]
        day = first + timedelta(days=rng.randint(0, 90))
        while day < now:
            supply = rng.choice((30, 90, 90))
            b.course(name, rx, [(day, day + timedelta(days=supply - 1), dose)], style="request")
            day += timedelta(days=supply + rng.randint(-10, 30))
    for _ in range(span // 91):
        code, display = rng.choice(ACUTE)
        onset = first + timedelta(days=rng.randint(0, span))
        b.condition(
            ICD10,
            code,
            display,
            onset,
            status="resolved",
            category="encounter-diagnosis",
            abated=onset + timedelta(days=rng.randint(5, 40)),
        )
    for offset in range(rng.randint(0, 60), span, rng.randint(80, 120)):
        when = first + timedelta(days=offset)
        b.observation(
            "85354-9",
            "Blood pressure panel",
            when,
            {
                "component": [
                    {
                        "code": _cc(LOINC, "8480-6", "Systolic blood pressure"),
                        "valueQuantity": _qty(rng.randint(105, 160), "mm[Hg]", "mm[Hg]"),
                    },
                    {
                        "code": _cc(LOINC, "8462-4", "Diastolic blood pressure"),
                        "valueQuantity": _qty(rng.randint(60, 100), "mm[Hg]", "mm[Hg]"),
                    },
                ]
            },
            "vital-signs",
        )
        if rng.random() < 0.35:
            b.observation(
                "3016-3",
                "TSH [Units/volume] in Serum or Plasma",
                when,
                {"valueQuantity": _qty(round(rng.uniform(0.3, 6.5), 2), "mIU/L", "m[IU]/L")},
                "laboratory",
            )
    # depressive episodes, each a run of trials, separated by sustained remission
    day, episode, previous = first, 0, ""
    while day < now - timedelta(days=21):
        episode += 1
        code, display = rng.choice(MDD_CODES[2:] if episode > 1 else MDD_CODES)
        onset, score = day, rng.randint(14, 25)
        mdd = [ICD10, code, display] if rng.random() < 0.8 else [SNOMED, "370143000", "Major depressive disorder"]
        while day < now - timedelta(days=7):
            name = rng.choice([n for n in ANTIDEPRESSANTS if n != previous])
            b.condition(mdd[0], mdd[1], mdd[2], onset, category="encounter-diagnosis", recorded=day)
            end, score = _trial(b, name, day, score, resistance, sparse)
            previous, day = name, end + timedelta(days=rng.randint(1, 35))
            if score <= 4 and rng.random() < 0.4:
                break  # remission: monthly low scores, then (maybe) relapse into a new episode
        remission_end = min(now, day + timedelta(days=rng.randint(60, 300)))
        if (now - remission_end).days < 180:
            remission_end = now  # no new episode in the last months: the patient is still well
        for visit in range(0, (remission_end - day).days, 30):
            b.phq9(day + timedelta(days=visit), rng.randint(0, 4))
        current = day >= now - timedelta(days=21)
        b.condition(
            mdd[0],
            mdd[1],
            mdd[2],
            onset,
            status="active" if current else rng.choice(("resolved", "remission")),
            abated=None if current else day,
        )
        day = remission_end + timedelta(days=1)
    if rng.random() < 0.3:  # a hypnotic low-dose trazodone, which is not an antidepressant trial
        start = now - timedelta(days=rng.randint(30, 400))
        b.course("trazodone", "10737", [(start, min(now, start + timedelta(days=89)), 50)], style="request")
    if rng.random() < 0.25:  # a mistaken diagnosis entry that must be discarded
        b.condition(
            ICD10,
            "F32.9",
            "Major depressive disorder, single episode, unspecified",
            now - timedelta(days=rng.randint(10, 90)),
            verification="entered-in-error",
        )
    for res in b.resources[1:]:
        if rng.random() < MALFORMED_RATE:
            _corrupt(res, rng, now)
    return {
        "resourceType": "Bundle",
        "id": f"synthetic-{seed}",
        "type": "collection",
        "timestamp": f"{now.isoformat()}T12:00:00Z",
        "entry": [
            {
                "fullUrl": f"https://example.org/fhir/{r.get('resourceType', 'Unknown')}/{r['id']}",
                "resource": r,
            }
            for r in b.resources
        ],
    }


def _corrupt(res: Json, rng: random.Random, now: date) -> None:
    """Break one record the way real exports are broken."""
    kind = rng.choice(("dose", "period", "future", "type", "value"))
    future = (now + timedelta(days=rng.randint(30, 400))).isoformat()
    dosages = res.get("dosage") or res.get("dosageInstruction") or []
    if kind == "dose" and dosages and dosages[0].get("doseAndRate"):
        dosages[0]["doseAndRate"] = [{"doseQuantity": _qty(5000, "mg", "mg")}]
    elif kind == "period" and "effectivePeriod" in res and "end" in res["effectivePeriod"]:
        period = res["effectivePeriod"]
        period["start"], period["end"] = period["end"], period["start"]
    elif kind == "value" and res["resourceType"] == "Observation" and "component" not in res:
        for key in ("valueInteger", "valueQuantity", "valueString"):
            res.pop(key, None)
        res["valueString"] = "n/a"
    elif kind == "type":
        del res["resourceType"]
    else:
        for key in ("authoredOn", "whenHandedOver", "effectiveDateTime", "onsetDateTime"):
            if key in res:
                res[key] = future
        if "effectivePeriod" in res:
            res["effectivePeriod"] = {"start": future}


def generate_population(n: int, *, seed: int = 0, history_scale: int = 1) -> Iterator[Json]:
    """n patients; patient i has seed ``seed * 1_000_000 + i`` (so one failing patient can be regenerated)."""
    for i in range(n):
        yield generate_patient(seed * 1_000_000 + i, history_scale=history_scale)


# -- bulk exports ------------------------------------------------------------------------------------------
PSYCHOTHERAPY: tuple[tuple[str, str], ...] = (
    ("90834", "Psychotherapy, 45 minutes with patient"),
    ("90837", "Psychotherapy, 60 minutes with patient"),
)
CPT = "http://www.ama-assn.org/go/cpt"


def _procedures(seed: int, pid: str, now: date) -> list[Json]:
    """A few psychotherapy sessions for about half of the patients (CPT codes, as real exports carry them)."""
    rng = random.Random(seed ^ 0x5EED)
    if rng.random() < 0.5:
        return []
    start = now - timedelta(days=rng.randint(60, 600))
    out: list[Json] = []
    for i in range(rng.randint(2, 8)):
        code, display = rng.choice(PSYCHOTHERAPY)
        out.append(
            {
                "resourceType": "Procedure",
                "id": f"{pid}-proc-{i + 1}",
                "status": "completed",
                "subject": {"reference": f"Patient/{pid}"},
                "code": _cc(CPT, code, display),
                "performedDateTime": (start + timedelta(days=14 * i)).isoformat(),
            }
        )
    return out


def _type_of_untyped(res: Json) -> str:
    if "medicationCodeableConcept" in res:
        return next(
            (t for k, t in (("authoredOn", "MedicationRequest"), ("whenHandedOver", "MedicationDispense")) if k in res),
            "MedicationStatement",
        )
    return "Condition" if "clinicalStatus" in res else "Observation"


def _broken_line(rng: random.Random, good: bytes) -> bytes:
    """One line of a bulk export file that a reader must count and skip: truncated, not an object, no subject."""
    kind = rng.randrange(3)
    if kind == 0:
        return good[: max(1, len(good) // 2)]
    if kind == 1:
        return b'["not", "a", "resource"]'
    return b'{"resourceType": "Practitioner", "id": "orphan-%d"}' % rng.randrange(10**6)


def _open_out(path: Any, gz: bool) -> Any:
    import gzip as _gzip

    return _gzip.open(path, "wb", compresslevel=1) if gz else path.open("wb")


def write_bulk_export(
    out_dir: Any,
    n: int,
    *,
    seed: int = 0,
    history_scale: int = 1,
    gzip_files: bool = False,
    broken_line_rate: float = 0.002,
    shared_medication_rate: float = 0.1,
    encounters_per_patient: int = 0,
    administration_rate: float = 0.0,
    now: date = DEFAULT_NOW,
) -> dict[str, int]:
    """Write a FHIR Bulk Data export of ``generate_population(n, seed=seed)``: one NDJSON file per resource
    type (``Patient.ndjson``, ``Observation.ndjson``, … or ``.ndjson.gz``), resources of all patients in
    patient order, plus psychotherapy Procedures. Besides the ~2 % of resources that ``generate_patient``
    breaks on purpose, about ``broken_line_rate`` of lines are broken at the line level (truncated JSON, a
    JSON array, a resource with no patient). About ``shared_medication_rate`` of the medication resources name
    their drug by ``medicationReference`` to a shared Medication (``Medication.ndjson``, one per distinct
    concept), as exports from EHRs with a formulary do. ``encounters_per_patient`` Encounters per patient go to
    ``Encounter.ndjson``: a type no rule reads, like most of what an export without a ``_type`` filter holds
    (Encounter, Claim, ExplanationOfBenefit, …). About ``administration_rate`` of the patients have doses given on
    a ward or in a clinic (``MedicationAdministration.ndjson``): an inpatient stay with an antidepressant given
    twice a day, some with a missed or unrecorded amount, and for some of them esketamine sessions since.
    Returns lines written per file name."""
    import contextlib
    from pathlib import Path

    import orjson

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed * 7919 + 17)
    handles: dict[str, Any] = {}
    counts: dict[str, int] = {}
    suffix = ".ndjson.gz" if gzip_files else ".ndjson"
    files = contextlib.ExitStack()

    def write(rtype: str, line: bytes) -> None:
        name = rtype + suffix
        fh = handles.get(name)
        if fh is None:
            path = out / name
            fh = handles[name] = files.enter_context(_open_out(path, gzip_files))
        fh.write(line + b"\n")
        counts[name] = counts.get(name, 0) + 1

    share_rng = random.Random(seed * 104_729 + 3)  # its own stream: the broken lines stay where they were
    encounter_rng = random.Random(seed * 15_485_863 + 5)  # likewise
    administration_rng = random.Random(seed * 32_452_843 + 7)  # likewise
    medications: dict[bytes, dict[str, Any]] = {}  # concept JSON -> shared Medication, in first-use order

    def shared(res: dict[str, Any]) -> dict[str, Any]:
        concept = res.get("medicationCodeableConcept")
        if not isinstance(concept, dict) or share_rng.random() >= shared_medication_rate:
            return res
        key = orjson.dumps(concept, option=orjson.OPT_SORT_KEYS)
        med = medications.get(key)
        if med is None:
            med = medications[key] = {"resourceType": "Medication", "id": f"med-{len(medications)}", "code": concept}
        res = {k: v for k, v in res.items() if k != "medicationCodeableConcept"}
        res["medicationReference"] = {"reference": f"Medication/{med['id']}"}
        return res

    with files:
        for i in range(n):
            patient_seed = seed * 1_000_000 + i
            bundle = generate_patient(patient_seed, history_scale=history_scale, now=now)
            resources = [e["resource"] for e in bundle["entry"]]
            resources += _procedures(patient_seed, f"syn-{patient_seed}", now)
            resources = [shared(r) if r.get("resourceType") in _MEDICATION_TYPES else r for r in resources]
            resources += _encounters(encounter_rng, f"syn-{patient_seed}", encounters_per_patient, now)
            if administration_rng.random() < administration_rate:
                resources += _administrations(administration_rng, f"syn-{patient_seed}", now)
            for res in resources:
                # a resource broken by losing its resourceType stays in the file of the type it had
                rtype = res.get("resourceType") or _type_of_untyped(res)
                line = orjson.dumps(res)
                write(rtype, line)
                if rng.random() < broken_line_rate:
                    write(rtype, _broken_line(rng, line))
        for med in medications.values():
            write("Medication", orjson.dumps(med))
    return dict(sorted(counts.items()))


_MEDICATION_TYPES = ("MedicationRequest", "MedicationStatement", "MedicationDispense")
_ENCOUNTER_TYPES = (
    ("185349003", "Encounter for check up (procedure)", "AMB"),
    ("390906007", "Follow-up encounter (procedure)", "AMB"),
    ("185347001", "Encounter for problem (procedure)", "AMB"),
    ("50849002", "Emergency room admission (procedure)", "EMER"),
)


# (name, RxNorm ingredient, mg per administration): given twice a day on a ward
_WARD_DRUGS = (("sertraline", "36437", 50.0), ("venlafaxine", "39786", 75.0), ("mirtazapine", "15996", 15.0))


def _administrations(rng: random.Random, pid: str, now: date) -> list[dict[str, Any]]:
    """One patient's doses given by staff: a 2-5 week inpatient stay in the last two years with an antidepressant
    twice a day (about 1 in 40 doses without its amount, 1 in 60 not given), and for a third of these patients
    esketamine 56 mg twice a week for 4 weeks, starting 0-120 days before ``now``."""
    name, code, mg = rng.choice(_WARD_DRUGS)
    admitted = now - timedelta(days=rng.randrange(60, 730))
    days = rng.randrange(14, 36)
    given: list[tuple[str, str, str, float | None, str]] = []  # (name, code, when, mg, status)
    for d in range(days):
        for hour in ("08", "20"):
            when = f"{(admitted + timedelta(days=d)).isoformat()}T{hour}:00:00Z"
            roll = rng.random()
            status = "not-done" if roll < 1 / 60 else "completed"
            given.append((name, code, when, None if roll > 1 - 1 / 40 else mg, status))
    if rng.random() < 1 / 3:
        start = now - timedelta(days=rng.randrange(0, 121))
        for d in (0, 3, 7, 10, 14, 17, 21, 24):
            session = start + timedelta(days=d)
            if session <= now:
                given.append(("esketamine", "2119365", f"{session.isoformat()}T10:00:00Z", 56.0, "completed"))
    out = []
    for k, (drug, rx, when, amount, status) in enumerate(given):
        res: dict[str, Any] = {
            "resourceType": "MedicationAdministration",
            "id": f"{pid}-adm-{k}",
            "status": status,
            "medicationCodeableConcept": _cc(RXNORM, rx, drug),
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": when,
        }
        if amount is not None:
            route = "nasal" if drug == "esketamine" else "oral"
            res["dosage"] = {"route": {"text": route}, "dose": _qty(amount, "mg", "mg")}
        out.append(res)
    return out


def _encounters(rng: random.Random, pid: str, count: int, now: date) -> list[dict[str, Any]]:
    """Encounters of one patient over the last three years, shaped like those of a real export."""
    out = []
    for k in range(count):
        code, display, klass = rng.choice(_ENCOUNTER_TYPES)
        day = now - timedelta(days=rng.randrange(3 * 365))
        out.append(
            {
                "resourceType": "Encounter",
                "id": f"{pid}-enc-{k}",
                "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": klass},
                "type": [{"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}]}],
                "subject": {"reference": f"Patient/{pid}"},
                "participant": [{"individual": {"reference": f"Practitioner/pr-{rng.randrange(50)}"}}],
                "period": {"start": f"{day.isoformat()}T09:00:00-05:00", "end": f"{day.isoformat()}T09:30:00-05:00"},
                "serviceProvider": {"reference": "Organization/org-1"},
            }
        )
    return out
