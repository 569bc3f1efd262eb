"""`cds rules diff OLD NEW --patients DIR`: what a rule change does to every case in a library.

For each patient: findings added and removed (by code and the trial they are about), findings whose text
changed, the TRD status, each trial's adequacy and outcome, staging values, and whether the case's own
expectations still hold. This is what a clinical reviewer signs off."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cds.authoring.cases import Case, run_case
from cds.engine.reload import close_evaluator
from cds.engine.runner import EvaluatorKind
from cds.evaluation import Evaluation, Evaluator
from cds.knowledge import load_knowledge


@dataclass(frozen=True)
class Snapshot:
    findings: dict[tuple[str, str], str]  # (code, subject label) -> summary
    trd_status: str
    trials: dict[str, tuple[str, str]]  # trial label -> (adequacy, outcome)
    staging: dict[str, str]
    passed: bool
    error: str | None = None


def _trial_label(ev: Evaluation, subject: str | None) -> str:
    for r in ev.trials:
        if r.trial.id == subject:
            return f"{r.trial.ingredient} from {r.trial.start}" if r.trial.start else r.trial.ingredient
    return subject or "patient"


def snapshot(ev: Evaluation, passed: bool) -> Snapshot:
    findings: dict[tuple[str, str], str] = {}
    for f in ev.findings:
        key = (f.code, _trial_label(ev, f.subject))
        findings[key] = f"{findings[key]} | {f.summary}" if key in findings else f.summary
    trials = {_trial_label(ev, r.trial.id): (r.adequacy, str(r.trial.outcome.outcome)) for r in ev.trials}
    staging: dict[str, str] = {}
    for name, result in (getattr(ev, "staging", None) or {}).items():
        data: dict[str, Any] = result.model_dump() if hasattr(result, "model_dump") else dict(result)
        value = data.get("label") or data.get("value")
        staging[name] = "not computed" if not data.get("computed", True) else f"{value}"
    return Snapshot(findings, ev.trd_status, trials, staging, passed)


@dataclass
class PatientDiff:
    case: str
    added: list[tuple[str, str, str]] = field(default_factory=list)  # (code, subject, summary)
    removed: list[tuple[str, str, str]] = field(default_factory=list)
    reworded: list[tuple[str, str, str, str]] = field(default_factory=list)  # (code, subject, old, new)
    trd_status: tuple[str, str] | None = None
    trials: list[tuple[str, str, str]] = field(default_factory=list)  # (trial, old, new)
    staging: list[tuple[str, str, str]] = field(default_factory=list)
    expectations: tuple[bool, bool] | None = None  # (passed with OLD, passed with NEW), when it changed
    errors: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.added
            or self.removed
            or self.reworded
            or self.trd_status
            or self.trials
            or self.staging
            or self.expectations
            or self.errors
        )


def compare(case: str, old: Snapshot, new: Snapshot) -> PatientDiff:
    d = PatientDiff(case)
    for key in new.findings.keys() - old.findings.keys():
        d.added.append((*key, new.findings[key]))
    for key in old.findings.keys() - new.findings.keys():
        d.removed.append((*key, old.findings[key]))
    for key in old.findings.keys() & new.findings.keys():
        if old.findings[key] != new.findings[key]:
            d.reworded.append((*key, old.findings[key], new.findings[key]))
    d.added.sort()
    d.removed.sort()
    d.reworded.sort()
    if old.trd_status != new.trd_status:
        d.trd_status = (old.trd_status, new.trd_status)
    for label in sorted(old.trials.keys() | new.trials.keys()):
        o, n = old.trials.get(label), new.trials.get(label)
        if o != n:
            d.trials.append((label, "/".join(o) if o else "absent", "/".join(n) if n else "absent"))
    for name in sorted(old.staging.keys() | new.staging.keys()):
        o2, n2 = old.staging.get(name, "absent"), new.staging.get(name, "absent")
        if o2 != n2:
            d.staging.append((name, o2, n2))
    if old.passed != new.passed:
        d.expectations = (old.passed, new.passed)
    return d


def _evaluate(case: Case, evaluator: Evaluator) -> Snapshot | str:
    run = run_case(case, evaluator)
    if run.evaluation is None:
        return run.error or "evaluation failed"
    return snapshot(run.evaluation, run.passed)


def diff_rules(
    old_dir: Path, new_dir: Path, cases: Sequence[Case], kind: EvaluatorKind = "durable"
) -> list[PatientDiff]:
    """Evaluate every case with the rules in OLD and in NEW; one PatientDiff per case (changed or not)."""
    old_ev = Evaluator(load_knowledge(old_dir), kind=kind)
    new_ev = Evaluator(load_knowledge(new_dir), kind=kind)
    out = []
    for case in cases:
        o, n = _evaluate(case, old_ev), _evaluate(case, new_ev)
        if isinstance(o, str) or isinstance(n, str):
            d = PatientDiff(case.name)
            d.errors += [f"OLD: {o}"] if isinstance(o, str) else []
            d.errors += [f"NEW: {n}"] if isinstance(n, str) else []
            out.append(d)
            continue
        out.append(compare(case.name, o, n))
    for ev in (old_ev, new_ev):
        close_evaluator(ev)
    return out
