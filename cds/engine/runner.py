"""Run the rule stages over one patient's facts and turn activations into Findings.

classify: per-trial verdicts (adequacy, failure, intolerance) and data quality;
conclude: TRD status from the counts of the classify stage's verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from cds.engine import staging
from cds.engine.base import Activation, Evaluator, FactView, StageResult, StageRules
from cds.engine.ir import Module, Rule, load_modules
from cds.engine.recommend_inputs import agent_scope, recommend_views
from cds.engine.reference import ReferenceEvaluator
from cds.engine.screen_inputs import screen_views
from cds.engine.staging import StagingResult
from cds.engine.staging_inputs import staging_views
from cds.engine.views import Views, adequacy_by_trial, failed_trials, stage_one, trd_summary
from cds.facts.construct import trusted
from cds.facts.models import FactSet
from cds.findings import Finding, FindingSource, Indicator, render_template
from cds.knowledge import Knowledge

EvaluatorKind = Literal["durable", "reference"]
STAGES = ("classify", "conclude", "screen", "recommend")
_CATEGORY_RANK = {"trd": 0, "safety": 1, "confounder": 2, "staging": 3, "adequacy": 4, "data-quality": 9}
_INDICATOR_RANK = {"critical": 0, "warning": 1, "info": 2}


@dataclass
class RuleOutcome:
    findings: list[Finding] = field(default_factory=list)
    adequacy: dict[str, str] = field(default_factory=dict)
    trd_status: str = "insufficient_data"
    failed_adequate_trials: int = 0
    activations: dict[str, list[Activation]] = field(default_factory=dict)
    staging: dict[str, StagingResult] = field(default_factory=dict)


def make_evaluator(kind: EvaluatorKind, rules: StageRules) -> Evaluator:
    if kind == "reference":
        return ReferenceEvaluator(rules)
    from cds.engine.durable import DurableEvaluator  # the only import of the durable adapter

    return DurableEvaluator(rules)


class RuleEngine:
    def __init__(
        self, knowledge: Knowledge, kind: EvaluatorKind = "durable", modules: list[Module] | None = None
    ) -> None:
        self.knowledge = knowledge
        self.kind = kind
        self.modules = modules if modules is not None else load_modules(knowledge.rules_dir, knowledge.config)
        self.stages = {s: StageRules.from_modules(s, self.modules) for s in STAGES}
        self.evaluators = {s: make_evaluator(kind, r) for s, r in self.stages.items()}
        self.rules: dict[str, Rule] = {r.id: r for rs in self.stages.values() for r in rs.rules}
        self._order = {rid: i for i, rid in enumerate(self.rules)}
        order = [code for m in self.modules for code in m.option_order]
        self._option_order = {code: i for i, code in enumerate(dict.fromkeys(order))}
        self._config_scope = {name: s.value for name, s in knowledge.config.settings.items()}
        self._plans = {r.id: _plan(r) for r in self.rules.values()}
        self._agent_scope = agent_scope(self.stages["recommend"])  # the agents the rules can offer

    def evaluate(self, facts: FactSet, evaluators: Mapping[str, Evaluator] | None = None) -> RuleOutcome:
        """Run the stages on ``facts``; ``evaluators`` replaces the engine's own per stage (the explain trace)."""
        evaluators = self.evaluators if evaluators is None else evaluators
        first = stage_one(facts)
        r1 = evaluators["classify"].run(first.facts)
        summary = trd_summary(facts, r1)
        staging_views(facts, failed_trials(r1), self.knowledge, summary)
        r2 = evaluators["conclude"].run(summary.facts)
        outcome = RuleOutcome(
            adequacy=adequacy_by_trial(r1),
            activations={"classify": r1.activations, "conclude": r2.activations},
        )
        statuses = [str(f["status"]) for f in r2.derived if f.get("type") == "trd_status"]
        outcome.trd_status = statuses[0] if len(statuses) == 1 else "insufficient_data"
        concluded = self._findings(r2, summary)
        classified = self._findings(r1, first)
        for group in (concluded, classified):
            group.sort(
                key=lambda f: (_CATEGORY_RANK.get(f.category, 5), self._order[f.rule], f.subject or "", f.summary)
            )
        outcome.findings = concluded + classified
        staging_summary = next((f for f in summary.facts if f.get("type") == "staging_summary"), None)
        trd = next(f for f in summary.facts if f.get("type") == "trd_summary")
        outcome.failed_adequate_trials = int(trd["failed_adequate_trials"])
        screen = Views()
        screen_views(facts, outcome.trd_status, outcome.failed_adequate_trials, self.knowledge, screen)
        r3 = evaluators["screen"].run(screen.facts)
        outcome.activations["screen"] = r3.activations
        screened = self._findings(r3, screen)
        screened.sort(
            key=lambda f: (
                _INDICATOR_RANK[f.indicator],
                _CATEGORY_RANK.get(f.category, 5),
                self._order[f.rule],
                f.subject or "",
                f.summary,
            )
        )
        trd_first = [f for f in outcome.findings if f.category == "trd" and f.rule.startswith("trd.")]
        first_ids = {id(f) for f in trd_first}
        rest = [f for f in outcome.findings if id(f) not in first_ids]
        care = Views()
        recommend_views(facts, outcome.trd_status, failed_trials(r1), screened, self.knowledge, care, self._agent_scope)
        r4 = evaluators["recommend"].run(care.facts)
        outcome.activations["recommend"] = r4.activations
        options = self._findings(r4, care)
        options.sort(key=self._option_key)
        outcome.findings = trd_first + screened + options + rest
        outcome.staging = staging.compute(self.modules, r2.derived, concluded, facts, staging_summary)
        return outcome

    def _option_key(self, f: Finding) -> tuple[int, int, int, int, str]:
        """Eligible before not eligible, urgent first, then the site's preferred order (rules/next_steps.yaml)."""
        eligible = f.attributes.get("eligible", True) is not False
        urgent = f.attributes.get("priority") == "urgent"
        order = self._option_order.get(f.code, len(self._option_order))
        return (0 if eligible else 1, 0 if urgent else 1, order, self._order[f.rule], f.summary)

    def _findings(self, result: StageResult, views: Views) -> list[Finding]:
        derived: dict[str, FactView] = {str(d["id"]): d for d in result.derived}
        facts, display, evidence_of = views.by_id, views.display, views.evidence
        config_scope, context_scope = self._config_scope, self.knowledge.context
        merged: dict[str, dict[str, Any]] = {}  # a bound fact with its display values, read-only once made
        out: list[Finding] = []
        seen: set[tuple[str, str]] = set()
        for act in result.activations:
            plan = self._plans[act.rule]
            if plan is None:
                continue
            scopes: dict[str, dict[str, Any]] = {"config": config_scope, "context": context_scope}
            evidence: list[str] = []
            for bind, fid in act.bindings:
                scope = merged.get(fid)
                if scope is None:
                    fact = derived[fid] if fid in derived else facts.get(fid, {})
                    scope = merged[fid] = {**fact, **display.get(fid, {})}
                scopes[bind] = scope
                evidence += evidence_of.get(fid, ())
            summary = render_template(plan.summary, scopes)
            if (act.rule, summary) in seen:
                continue  # the same statement reached through another fact (e.g. two current lithium orders)
            seen.add((act.rule, summary))
            out.append(
                _new_finding(
                    dict(
                        code=plan.code,
                        rule=act.rule,
                        rule_version=plan.rule_version,
                        category=plan.category,
                        indicator=plan.indicator,
                        summary=summary,
                        detail=render_template(plan.detail, scopes),
                        evidence=tuple(dict.fromkeys(evidence)),
                        source=plan.source,
                        subject=act.bindings[-1][1] if act.bindings else None,
                        needs_clinical_review=plan.needs_clinical_review,
                        attributes={k: _resolve(v, scopes) for k, v in plan.attributes},
                        proposal={k: _resolve(v, scopes) for k, v in plan.proposal} if plan.proposal else None,
                    )
                )
            )
        return out


_new_finding = trusted(Finding)


class _FindingPlan(NamedTuple):
    """What a rule's finding needs from the rule, gathered once per engine."""

    code: str
    rule_version: str
    category: str
    indicator: Indicator
    summary: str
    detail: str
    source: FindingSource
    needs_clinical_review: bool
    attributes: tuple[tuple[str, Any], ...]
    proposal: tuple[tuple[str, Any], ...]


def _plan(rule: Rule) -> _FindingPlan | None:
    f = rule.finding
    if f is None:
        return None
    return _FindingPlan(
        code=f.code,
        rule_version=rule.version,
        category=f.category,
        indicator=f.indicator,
        summary=f.summary,
        detail=f.detail,
        source=FindingSource(label=rule.source.label, url=rule.source.url, confidence=rule.source.confidence),
        needs_clinical_review=rule.source.confidence not in (None, "C"),
        attributes=tuple(f.attributes.items()),
        proposal=tuple(f.proposal.items()) if f.proposal else (),
    )


def _resolve(value: Any, scopes: dict[str, dict[str, Any]]) -> Any:
    """A template attribute: a literal, or `=bind.field` taken from a bound fact."""
    if isinstance(value, str) and value.startswith("="):
        bind, _, name = value[1:].partition(".")
        return scopes.get(bind, {}).get(name)
    return value
