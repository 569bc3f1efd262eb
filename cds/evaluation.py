"""Evaluate one patient end to end: FHIR bytes -> record -> facts -> rules -> Evaluation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cds.engine.runner import EvaluatorKind, RuleEngine
from cds.engine.staging import StagingResult
from cds.facts.builder import build_facts
from cds.facts.construct import trusted
from cds.facts.models import Episode, ExcludedExposure, FactSet, Trial
from cds.fhir.reader import RawInput, read_input, read_resources
from cds.fhir.record import RecordReader
from cds.findings import Finding
from cds.knowledge import Knowledge, cached_knowledge


class TrialResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    trial: Trial
    adequacy: str


class ReviewedSetting(BaseModel):
    """A site setting not confirmed in a primary source: shown with every result as needing clinical review."""

    model_config = ConfigDict(frozen=True)
    name: str
    value: float
    unit: str
    confidence: str
    source: str


class Evaluation(BaseModel):
    model_config = ConfigDict(frozen=True)
    patient: str | None
    now: date
    knowledge_version: str
    episode: Episode
    trials: tuple[TrialResult, ...]
    excluded: tuple[ExcludedExposure, ...]
    trd_status: str
    failed_adequate_trials: int
    findings: tuple[Finding, ...]
    staging: dict[str, StagingResult] = Field(default_factory=dict)
    data_quality: dict[str, int]
    resources_read: int
    settings_needing_review: tuple[ReviewedSetting, ...] = ()


_new_evaluation, _trial_result = trusted(Evaluation), trusted(TrialResult)  # Model(**fields), cheaper


class Evaluator:
    """Holds the knowledge and the compiled rules; evaluate() is safe to call for many patients."""

    def __init__(self, knowledge: Knowledge | None = None, kind: EvaluatorKind = "durable") -> None:
        self.knowledge = knowledge or cached_knowledge()
        self.engine = RuleEngine(self.knowledge, kind)
        self.review = tuple(
            ReviewedSetting(name=name, value=s.value, unit=s.unit, confidence=s.confidence, source=s.source)
            for name, s in sorted(self.knowledge.config.settings.items())
            if s.needs_review
        )

    def facts(self, data: bytes, now: date) -> FactSet:
        return self._facts(read_input(data), now)

    def _facts(self, raw: RawInput, now: date) -> FactSet:
        record = RecordReader(self.knowledge, now).read(raw)
        return build_facts(record, self.knowledge, now)

    def evaluate_resources(self, resources: Iterable[Any], now: date) -> Evaluation:
        """Evaluate already-parsed FHIR resources of one patient (dicts; Bundles are unpacked)."""
        return self.evaluate_facts(self._facts(read_resources(resources), now))

    def evaluate_raw(self, raw: RawInput, now: date) -> Evaluation:
        """Evaluate resources already read by cds.fhir.reader (read_input, read_resources, read_lines)."""
        return self.evaluate_facts(self._facts(raw, now))

    def evaluate_facts(self, facts: FactSet) -> Evaluation:
        outcome = self.engine.evaluate(facts)
        adequacy = outcome.adequacy
        return _new_evaluation(
            {
                "patient": facts.patient_ref,
                "now": facts.now,
                "knowledge_version": self.knowledge.version,
                "episode": facts.episode,
                "trials": tuple(
                    _trial_result({"trial": t, "adequacy": adequacy.get(t.id, "unknown")}) for t in facts.trials
                ),
                "excluded": facts.excluded,
                "trd_status": outcome.trd_status,
                "failed_adequate_trials": outcome.failed_adequate_trials,
                "findings": tuple(outcome.findings),
                "staging": outcome.staging,
                "data_quality": dict(sorted(Counter(i.kind for i in facts.issues).items())),
                "resources_read": facts.record.resource_count,
                "settings_needing_review": self.review,
            }
        )

    def evaluate_bytes(self, data: bytes, now: date) -> Evaluation:
        return self.evaluate_facts(self.facts(data, now))

    def evaluate_path(self, path: Path, now: date) -> Evaluation:
        return self.evaluate_bytes(path.read_bytes(), now)
