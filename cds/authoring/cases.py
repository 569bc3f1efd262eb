"""Test-patient cases: a YAML file per case, expanded to FHIR R4, run, and compared with its expectations.

A case holds `description`, `now`, `resources` and `expect` (see docs/writing-test-cases.md). Resources are
FHIR R4 JSON with two conveniences:

* compact codes: a string `"SYSTEM#code display"` (SYSTEM an alias such as `rxnorm`, `loinc`, `snomed`,
  `icd10`, or a full URL) stands for a CodeableConcept; inside a `coding:` list it stands for one Coding;
* shorthands for the common resources, written as a one-key mapping: `medication_statement` (alias
  `statement`), `medication_request` (alias `request`), `phq9`, `score`, `condition`, `allergy`, `patient`.

The same loader serves pytest (tests/patients/conftest.py) and `cds validate`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cds.engine.base import Activation
from cds.errors import CdsError
from cds.evaluation import Evaluation, Evaluator
from cds.facts.models import FactSet
from cds.knowledge.loader import YAML_LOADER

SYSTEMS: dict[str, str] = {
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "loinc": "http://loinc.org",
    "snomed": "http://snomed.info/sct",
    "icd10": "http://hl7.org/fhir/sid/icd-10-cm",
    "icd10cm": "http://hl7.org/fhir/sid/icd-10-cm",
    "icd10who": "http://hl7.org/fhir/sid/icd-10",
    "atc": "http://www.whocc.no/atc",
    "ucum": "http://unitsofmeasure.org",
    "condition-clinical": "http://terminology.hl7.org/CodeSystem/condition-clinical",
    "condition-ver-status": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
    "allergy-clinical": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
    "gts": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation",
}
_COMPACT = re.compile(
    r"^(?P<system>https?://[^#\s]+|urn:[^#\s]+|[A-Za-z][\w.-]*)#(?P<code>\S+)(?:\s+(?P<display>.+))?$"
)
_DOSE = re.compile(
    r"^\s*(?P<mg>\d+(?:\.\d+)?)\s*mg(?:\s*/\s*day)?\s*(?P<freq>once daily|daily|qd|twice daily|bid|"
    r"three times daily|tid|four times daily|qid)?\s*$",
    re.IGNORECASE,
)
_FREQ = {"": 1, "once daily": 1, "daily": 1, "qd": 1, "twice daily": 2, "bid": 2}
_FREQ |= {"three times daily": 3, "tid": 3, "four times daily": 4, "qid": 4}
PATIENT_ID = "p1"


class CaseError(CdsError):
    """A case file is malformed (bad YAML, unknown keys, a code or shorthand that cannot be expanded)."""


# ---------------------------------------------------------------------------------- compact codes


def coding(text: str) -> dict[str, str]:
    m = _COMPACT.match(text.strip())
    if not m:
        raise CaseError(f"{text!r} is not a compact code (SYSTEM#code display)")
    system = m["system"]
    if "://" not in system and not system.startswith("urn:"):
        if system.lower() not in SYSTEMS:
            raise CaseError(f"unknown code system alias {system!r} in {text!r}; known: {', '.join(SYSTEMS)}")
        system = SYSTEMS[system.lower()]
    out = {"system": system, "code": m["code"]}
    if m["display"]:
        out["display"] = m["display"]
    return out


def is_compact(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    m = _COMPACT.match(value.strip())
    if m is None:
        return False
    system = m["system"]
    return "://" in system or system.startswith("urn:") or system.lower() in SYSTEMS


def concept(value: Any) -> dict[str, Any]:
    """A CodeableConcept from a compact code, a list of compact codes, or plain text (`text: ...`)."""
    if isinstance(value, dict):
        return {str(k): expand(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return {"coding": [coding(v) for v in value]}
    if is_compact(value):
        return {"coding": [coding(str(value))]}
    return {"text": str(value)}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def expand(value: Any, key: str | None = None) -> Any:
    """Expand compact codes anywhere in a raw FHIR resource, and YAML dates to ISO strings."""
    if isinstance(value, dict):
        return {k: expand(v, k) for k, v in value.items()}
    if isinstance(value, list):
        if key == "coding":
            return [coding(v) if isinstance(v, str) else expand(v) for v in value]
        return [expand(v, key) for v in value]
    if is_compact(value):
        return concept(value)
    return _plain(value)


# ---------------------------------------------------------------------------------- shorthands


def _dosage(spec: dict[str, Any]) -> dict[str, Any] | None:
    if spec.get("dose_text"):
        return {"text": str(spec["dose_text"])}
    dose = spec.get("dose")
    if dose is None:
        return None
    m = _DOSE.match(str(dose))
    if not m:
        raise CaseError(
            f"dose {dose!r}: write '<number> mg [daily|twice daily|tid|qid]', or use dose_text for free text"
        )
    per_day = _FREQ[(m["freq"] or "").lower()]
    return {
        "text": str(dose),
        "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
        "doseAndRate": [
            {"doseQuantity": {"value": float(m["mg"]), "unit": "mg", "system": SYSTEMS["ucum"], "code": "mg"}}
        ],
    }


def _period(spec: dict[str, Any]) -> dict[str, str]:
    out = {}
    if spec.get("start") is not None:
        out["start"] = _plain(spec["start"])
    if spec.get("end") is not None:
        out["end"] = _plain(spec["end"])
    return out


def _status_reason(spec: dict[str, Any]) -> list[dict[str, Any]] | None:
    reason = spec.get("status_reason")
    return [concept(reason)] if reason is not None else None


def _statement(spec: dict[str, Any], rid: str) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": rid,
        "status": spec.get("status", "completed" if spec.get("end") else "active"),
        "medicationCodeableConcept": concept(spec["code"]),
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectivePeriod": _period(spec),
    }
    if (reason := _status_reason(spec)) is not None:
        res["statusReason"] = reason
    if (dosage := _dosage(spec)) is not None:
        res["dosage"] = [dosage]
    return res


def _request(spec: dict[str, Any], rid: str) -> dict[str, Any]:
    dosage = _dosage(spec) or {}
    dosage.setdefault("timing", {}).setdefault("repeat", {})["boundsPeriod"] = _period(spec)
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": spec.get("status", "completed" if spec.get("end") else "active"),
        "intent": spec.get("intent", "order"),
        "medicationCodeableConcept": concept(spec["code"]),
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "dosageInstruction": [dosage],
    }
    if spec.get("start") is not None:
        res["authoredOn"] = _plain(spec["start"])
    if (reason := _status_reason(spec)) is not None:
        res["statusReason"] = reason[0]
    return res


_AMOUNT = re.compile(r"^\s*(?P<mg>\d+(?:\.\d+)?)\s*mg\s*$", re.IGNORECASE)


def _administrations(spec: dict[str, Any], rid: str) -> list[dict[str, Any]]:
    """MedicationAdministrations: one on `date`, or `times_per_day` every `every_days` days from `start` to `end`
    (both included); ids `<rid>`, or `<rid>-<n>` for a series."""
    if spec.get("date") is not None:
        if spec.get("start") is not None or spec.get("end") is not None:
            raise CaseError("give either date or start and end")
        days = [_as_date(spec["date"], "date")]
    else:
        first, last = _as_date(spec["start"], "start"), _as_date(spec["end"], "end")
        step = int(spec.get("every_days", 1))
        if step < 1 or last < first:
            raise CaseError("start must not be after end, and every_days must be 1 or more")
        days = [first + timedelta(days=n) for n in range(0, (last - first).days + 1, step)]
    per_day = int(spec.get("times_per_day", 1))
    if not 1 <= per_day <= 24:
        raise CaseError("times_per_day must be 1 to 24")
    dosage: dict[str, Any] | None = None
    if spec.get("dose") is not None:
        m = _AMOUNT.match(str(spec["dose"]))
        if not m:
            raise CaseError(f"dose {spec['dose']!r}: write '<number> mg', the amount given each time")
        dosage = {"dose": {"value": float(m["mg"]), "unit": "mg", "system": SYSTEMS["ucum"], "code": "mg"}}
    out: list[dict[str, Any]] = []
    for day in days:
        for k in range(per_day):
            res: dict[str, Any] = {
                "resourceType": "MedicationAdministration",
                "id": rid if len(days) * per_day == 1 else f"{rid}-{len(out) + 1}",
                "status": spec.get("status", "completed"),
                "medicationCodeableConcept": concept(spec["code"]),
                "subject": {"reference": f"Patient/{PATIENT_ID}"},
                "effectiveDateTime": f"{day.isoformat()}T{8 + k * (16 // per_day):02d}:00:00Z",
            }
            if dosage is not None:
                res["dosage"] = dosage
            out.append(res)
    return out


def _as_date(value: Any, key: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise CaseError(f"{key} {value!r} is not a date (YYYY-MM-DD)") from None


def _score(spec: dict[str, Any], rid: str, code: str | None = None) -> dict[str, Any]:
    value = spec.get("score", spec.get("value"))
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid,
        "status": spec.get("status", "final"),
        "code": concept(code or spec["code"]),
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": _plain(spec["date"]),
    }
    if isinstance(value, bool) or not isinstance(value, int | float):
        res["valueString"] = str(value)
    elif isinstance(value, int):
        res["valueInteger"] = value
    else:
        res["valueQuantity"] = {"value": value, "system": SYSTEMS["ucum"], "code": "{score}"}
    return res


def _condition(spec: dict[str, Any], rid: str) -> dict[str, Any]:
    status = spec.get("status", "active")
    res: dict[str, Any] = {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": {"coding": [{"system": SYSTEMS["condition-clinical"], "code": status}]},
        "code": concept(spec["code"]),
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
    }
    if spec.get("verification"):
        res["verificationStatus"] = {
            "coding": [{"system": SYSTEMS["condition-ver-status"], "code": spec["verification"]}]
        }
    if spec.get("onset") is not None:
        res["onsetDateTime"] = _plain(spec["onset"])
    if spec.get("abatement") is not None:
        res["abatementDateTime"] = _plain(spec["abatement"])
    if spec.get("recorded") is not None:
        res["recordedDate"] = _plain(spec["recorded"])
    return res


def _allergy(spec: dict[str, Any], rid: str) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "id": rid,
        "type": spec.get("type", "intolerance"),
        "code": concept(spec["code"]),
        "patient": {"reference": f"Patient/{PATIENT_ID}"},
    }
    if spec.get("onset") is not None:
        res["onsetDateTime"] = _plain(spec["onset"])
    if spec.get("note"):
        res["note"] = [{"text": str(spec["note"])}]
    return res


_SHORTHAND_KEYS: dict[str, set[str]] = {
    "medication_statement": {"id", "code", "dose", "dose_text", "start", "end", "status", "status_reason"},
    "medication_request": {"id", "code", "dose", "dose_text", "start", "end", "status", "status_reason", "intent"},
    "medication_administration": {"id", "code", "dose", "date", "start", "end", "times_per_day", "every_days"}
    | {"status"},
    "phq9": {"id", "date", "score", "status"},
    "score": {"id", "code", "date", "score", "value", "status"},
    "condition": {"id", "code", "onset", "abatement", "recorded", "status", "verification"},
    "allergy": {"id", "code", "type", "onset", "note"},
    "patient": {"id", "birth_date", "gender"},
}
_ALIASES = {
    "statement": "medication_statement",
    "request": "medication_request",
    "administration": "medication_administration",
}
_PREFIX = {
    "medication_statement": "ms",
    "medication_request": "mr",
    "medication_administration": "ma",
    "phq9": "obs",
    "score": "obs",
    "condition": "cond",
    "allergy": "ai",
}
SHORTHANDS = frozenset(_SHORTHAND_KEYS) | frozenset(_ALIASES)


def expand_resources(items: Sequence[Any]) -> list[dict[str, Any]]:
    """The case's `resources` as FHIR R4 JSON: a Patient first (added when the case has none)."""
    counters: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    patient: dict[str, Any] | None = None
    for n, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise CaseError(f"resources[{n}]: expected a mapping, got {type(item).__name__}")
        if "resourceType" in item:
            res = expand(item)
            if res["resourceType"] == "Patient" and patient is None:
                patient = res
                continue
            out.append(res)
            continue
        if len(item) != 1 or next(iter(item)) not in SHORTHANDS:
            raise CaseError(
                f"resources[{n}]: give a FHIR resource (with resourceType) or one of the shorthands "
                f"{', '.join(sorted(SHORTHANDS))}; got keys {sorted(item)}"
            )
        ((key, spec),) = item.items()
        kind = _ALIASES.get(str(key), str(key))
        spec = spec or {}
        if not isinstance(spec, dict):
            raise CaseError(f"resources[{n}].{kind}: expected a mapping")
        unknown = set(spec) - _SHORTHAND_KEYS[kind]
        if unknown:
            raise CaseError(
                f"resources[{n}].{kind}: unknown keys {sorted(unknown)}; allowed {sorted(_SHORTHAND_KEYS[kind])}"
            )
        if kind == "patient":
            patient = {"resourceType": "Patient", "id": PATIENT_ID}
            if spec.get("birth_date") is not None:
                patient["birthDate"] = _plain(spec["birth_date"])
            if spec.get("gender"):
                patient["gender"] = spec["gender"]
            continue
        counters[kind] = counters.get(kind, 0) + 1
        rid = str(spec.get("id") or f"{_PREFIX[kind]}-{sum(counters.values())}")
        try:
            if kind == "medication_statement":
                out.append(_statement(spec, rid))
            elif kind == "medication_request":
                out.append(_request(spec, rid))
            elif kind == "medication_administration":
                out += _administrations(spec, rid)
            elif kind == "phq9":
                out.append(_score(spec, rid, "loinc#44261-6 PHQ-9 total score"))
            elif kind == "score":
                out.append(_score(spec, rid))
            elif kind == "condition":
                out.append(_condition(spec, rid))
            elif kind == "allergy":
                out.append(_allergy(spec, rid))
        except KeyError as exc:
            raise CaseError(f"resources[{n}].{kind}: missing {exc.args[0]!r}") from None
    return [patient or {"resourceType": "Patient", "id": PATIENT_ID}, *out]


def bundle(resources: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


# ---------------------------------------------------------------------------------- the case model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FindingCount(_Strict):
    code: str
    count: int = Field(ge=1)


class FindingsExpect(_Strict):
    present: tuple[str | FindingCount, ...] = ()
    absent: tuple[str, ...] = ()


class TrialExpect(_Strict):
    """A trial the case expects; only the keys given are compared. Trials are matched by ingredient (and
    start, when given), in start-date order."""

    ingredient: str
    start: date | None = None
    adequacy: str | None = None
    outcome: str | None = None
    in_current_episode: bool | None = None
    max_daily_dose_mg: float | None = None
    weeks_at_adequate_dose: float | None = None
    improvement_pct: float | None = None


class Expect(_Strict):
    fired: tuple[str, ...] = ()
    not_fired: tuple[str, ...] = ()
    findings: FindingsExpect = FindingsExpect()
    trd_status: str | None = None
    failed_adequate_trials: int | None = None
    trials: tuple[TrialExpect, ...] | None = None
    trial_count: int | None = None
    staging: dict[str, Any] | None = None
    data_quality: dict[str, int] | None = None


class CaseFile(_Strict):
    description: str
    now: date
    resources: tuple[Any, ...]
    expect: Expect
    skip: str | bool = False
    only: bool = False
    xfail: dict[str, str] = Field(default_factory=dict)  # evaluator -> reason: a known engine defect
    tags: tuple[str, ...] = ()

    @field_validator("resources")
    @classmethod
    def _non_empty(cls, v: tuple[Any, ...]) -> tuple[Any, ...]:
        if not v:
            raise ValueError("a case needs at least one resource")
        return v


@dataclass(frozen=True)
class Case:
    path: Path
    name: str  # the path relative to the library root, without .yaml
    data: CaseFile
    resources: tuple[dict[str, Any], ...]
    folder_candidates: tuple[str, ...]  # rule ids the case's folders may name, longest first
    polarity: str | None  # "in" (must fire) or "out" (a near miss: must not fire), from the file name
    folder_rule: str | None = (
        None  # the rule the folder names (adequacy/dose-below-minimum -> adequacy.dose-below-minimum)
    )

    def for_rules(self, rule_ids: Iterable[str]) -> Case:
        """This case with its folder rule resolved against the rules in force: the longest candidate that is a
        rule id, else the two-folder reading (which then fails, naming the rule it expected)."""
        if not self.folder_candidates:
            return self
        known = set(rule_ids)
        rule = next((c for c in self.folder_candidates if c in known), self.folder_candidates[-1])
        return replace(self, folder_rule=rule)

    @property
    def expect(self) -> Expect:
        return self.data.expect

    @property
    def fired(self) -> tuple[str, ...]:
        extra = (self.folder_rule,) if self.folder_rule and self.polarity == "in" else ()
        return tuple(dict.fromkeys((*self.expect.fired, *extra)))

    @property
    def not_fired(self) -> tuple[str, ...]:
        extra = (self.folder_rule,) if self.folder_rule and self.polarity == "out" else ()
        return tuple(dict.fromkeys((*self.expect.not_fired, *extra)))

    def bundle_bytes(self) -> bytes:
        return orjson.dumps(bundle(self.resources))


def _folder_rules(path: Path) -> tuple[tuple[str, ...], str | None]:
    """`<module>/<rule>/in-*.yaml` must fire rule `<module>.<rule>`; `out-*.yaml` is a near miss that must not.
    Rule ids may have more parts (`staging/trsm/stage-2` -> `staging.trsm.stage-2`): the candidates are the
    last 2, 3 and 4 folder names, longest first; `Case.for_rules` picks the one that names a rule."""
    polarity = "in" if path.name.startswith("in-") else "out" if path.name.startswith("out-") else None
    folders = [p for p in path.parent.parts if p not in ("/", "")]
    if polarity is None or len(folders) < 2:
        return (), polarity
    return tuple(".".join(folders[-k:]) for k in (4, 3, 2) if len(folders) >= k), polarity


def load_case(path: Path, root: Path | None = None) -> Case:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER)
    except OSError as exc:
        raise CaseError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise CaseError(f"{path}: not valid YAML: {exc}") from None
    try:
        data = CaseFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:8])
        raise CaseError(f"{path}: {problems}") from None
    try:
        resources = tuple(expand_resources(data.resources))
    except CaseError as exc:
        raise CaseError(f"{path}: {exc}") from None
    candidates, polarity = _folder_rules(path.resolve())
    if root is not None and path.is_relative_to(root) and path.parent != root:
        name = str(path.relative_to(root).with_suffix(""))
    elif candidates:  # named module/rule/case wherever the library is rooted
        name = "/".join(path.resolve().with_suffix("").parts[-3:])
    else:
        name = path.stem
    return Case(path, name, data, resources, candidates, polarity, candidates[-1] if candidates else None)


def case_paths(paths: Iterable[Path]) -> list[tuple[Path, Path]]:
    """(case file, library root) for every *.yaml under the given files or folders, sorted."""
    out: list[tuple[Path, Path]] = []
    for p in paths:
        if p.is_dir():
            out += [(f, p) for f in sorted(p.rglob("*.yaml")) if not f.name.startswith(("_", "."))]
        else:
            out.append((p, p.parent))
    return out


def load_cases(paths: Iterable[Path]) -> tuple[list[Case], list[tuple[Path, str]]]:
    """All cases under the paths, and (path, error) for each that could not be loaded. With `only: true` on
    any case, only those cases are returned."""
    cases, errors = [], []
    for path, root in case_paths(paths):
        try:
            cases.append(load_case(path, root))
        except CaseError as exc:
            errors.append((path, str(exc)))
    if any(c.data.only for c in cases):
        cases = [c for c in cases if c.data.only]
    return cases, errors


# ---------------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Check:
    what: str
    expected: str
    actual: str
    ok: bool


@dataclass
class CaseRun:
    case: Case
    evaluator: str
    checks: list[Check] = field(default_factory=list)
    fired: set[str] = field(default_factory=set)
    evaluation: Evaluation | None = None
    facts: FactSet | None = None
    activations: dict[str, list[Activation]] = field(default_factory=dict)
    error: str | None = None

    @property
    def skipped(self) -> bool:
        return bool(self.case.data.skip)

    @property
    def xfail_reason(self) -> str | None:
        """Why this run is expected to fail (a known defect of this evaluator), if it is."""
        return self.case.data.xfail.get(self.evaluator)

    @property
    def counts_as_failure(self) -> bool:
        return not self.skipped and not self.passed and self.xfail_reason is None

    @property
    def passed(self) -> bool:
        return self.error is None and all(c.ok for c in self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def _trial_value(result: Any, key: str) -> Any:
    if key == "adequacy":
        return result.adequacy
    if key == "outcome":
        return result.trial.outcome.outcome
    if key == "improvement_pct":
        v = result.trial.outcome.improvement_pct
        return None if v is None else round(v, 1)
    return getattr(result.trial, key)


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, float | int) and isinstance(actual, float | int) and not isinstance(expected, bool):
        return abs(float(expected) - float(actual)) < 0.05
    return bool(expected == actual)


def compare(case: Case, evaluation: Evaluation, fired: set[str], staging: dict[str, Any] | None) -> list[Check]:
    exp = case.expect
    checks: list[Check] = []
    for rid in case.fired:
        checks.append(Check(f"rule {rid}", "fires", "fires" if rid in fired else "does not fire", rid in fired))
    for rid in case.not_fired:
        ok = rid not in fired
        checks.append(Check(f"rule {rid}", "does not fire", "does not fire" if ok else "fires", ok))
    codes = [f.code for f in evaluation.findings]
    for item in exp.findings.present:
        code, count = (item, None) if isinstance(item, str) else (item.code, item.count)
        n = codes.count(code)
        ok = n > 0 if count is None else n == count
        checks.append(
            Check(f"finding {code}", "present" if count is None else f"{count}x", f"{n}x" if n else "absent", ok)
        )
    for code in exp.findings.absent:
        n = codes.count(code)
        checks.append(Check(f"finding {code}", "absent", f"{n}x" if n else "absent", n == 0))
    if exp.trd_status is not None:
        checks.append(
            Check("trd_status", exp.trd_status, evaluation.trd_status, exp.trd_status == evaluation.trd_status)
        )
    if exp.failed_adequate_trials is not None:
        a = evaluation.failed_adequate_trials
        checks.append(
            Check("failed_adequate_trials", str(exp.failed_adequate_trials), str(a), a == exp.failed_adequate_trials)
        )
    if exp.trial_count is not None:
        n = len(evaluation.trials)
        checks.append(Check("trial count", str(exp.trial_count), str(n), n == exp.trial_count))
    if exp.trials is not None:
        checks += _compare_trials(exp.trials, evaluation)
    if exp.data_quality is not None:
        for kind, count in exp.data_quality.items():
            n = evaluation.data_quality.get(kind, 0)
            checks.append(Check(f"data_quality {kind}", str(count), str(n), n == count))
    if exp.staging is not None:
        for key, value in exp.staging.items():
            actual = _lookup(staging, key)
            checks.append(Check(f"staging {key}", str(value), str(actual), _same(value, actual)))
    return checks


def _lookup(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return "(not in output)"
        data = data[part]
    return data


def _compare_trials(expected: Sequence[TrialExpect], evaluation: Evaluation) -> list[Check]:
    checks: list[Check] = []
    used: set[int] = set()
    for te in expected:
        label = te.ingredient + (f" from {te.start}" if te.start else "")
        idx = next(
            (
                i
                for i, r in enumerate(evaluation.trials)
                if i not in used
                and r.trial.ingredient == te.ingredient
                and (te.start is None or r.trial.start == te.start)
            ),
            None,
        )
        if idx is None:
            found = ", ".join(f"{r.trial.ingredient} {r.trial.start}" for r in evaluation.trials) or "none"
            checks.append(Check(f"trial {label}", "present", f"absent (trials: {found})", False))
            continue
        used.add(idx)
        result = evaluation.trials[idx]
        for key in (
            "adequacy",
            "outcome",
            "in_current_episode",
            "max_daily_dose_mg",
            "weeks_at_adequate_dose",
            "improvement_pct",
        ):
            want = getattr(te, key)
            if want is None:
                continue
            got = _trial_value(result, key)
            checks.append(Check(f"trial {label} {key}", str(want), str(got), _same(want, got)))
    return checks


def run_case(case: Case, evaluator: Evaluator, staging: bool = True) -> CaseRun:
    """Evaluate the case with one evaluator and compare with its expectations. Never raises for a bad case."""
    case = case.for_rules(evaluator.engine.rules)
    run = CaseRun(case=case, evaluator=evaluator.engine.kind)
    try:
        facts = evaluator.facts(case.bundle_bytes(), case.data.now)
        outcome = evaluator.engine.evaluate(facts)
        evaluation = evaluator.evaluate_facts(facts)
    except Exception as exc:  # a case must report, not crash the run
        run.error = f"{type(exc).__name__}: {exc}"
        return run
    run.facts = facts
    run.evaluation = evaluation
    run.activations = outcome.activations
    run.fired = {a.rule for acts in outcome.activations.values() for a in acts}
    contract = None
    if staging and case.expect.staging is not None:
        from cds.render.json_contract import to_contract

        contract = to_contract(evaluation).get("staging")
    run.checks = compare(case, evaluation, run.fired, contract)
    return run
