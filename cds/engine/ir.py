"""The rule language: a small, closed, engine-neutral IR that clinical authors write in YAML.

A rule matches typed facts with patterns (`when`), and may emit a finding and/or derive a new fact.
Thresholds are never literals in rules: `$config.<name>` refers to a setting in rules/config.yaml and
is resolved when the rules are loaded, so a site changes a threshold in one place.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cds.errors import KnowledgeError
from cds.knowledge.config import SiteConfig
from cds.knowledge.loader import read_yaml

Scalar = str | int | float | bool
Op = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not_in", "exists", "missing"]
ArithOp = Literal["add", "sub", "mul", "div"]
Stage = Literal["classify", "conclude", "screen", "recommend"]
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
RESERVED_BINDS = {"s", "m", "sid", "id", "type"}


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Expr(_Strict):
    """Arithmetic on the right-hand side: {op: [left, right]}; operands are numbers, `$config.x`,
    `field` (same fact) or `bind.field` (another bound fact)."""

    op: ArithOp
    left: Scalar | Expr
    right: Scalar | Expr

    @model_validator(mode="before")
    @classmethod
    def _from_mapping(cls, data: Any) -> Any:
        if isinstance(data, dict) and len(data) == 1 and next(iter(data)) in ("add", "sub", "mul", "div"):
            ((op, operands),) = data.items()
            if not isinstance(operands, list) or len(operands) != 2:
                raise ValueError(f"{op} takes a list of two operands")
            return {"op": op, "left": operands[0], "right": operands[1]}
        return data


class Test(_Strict):
    field: str
    op: Op
    value: Scalar | list[Scalar] | None = None
    ref: str | None = None
    expr: Expr | None = None

    @model_validator(mode="after")
    def _one_rhs(self) -> Test:
        given = [x for x in (self.value, self.ref, self.expr) if x is not None]
        if self.op in ("exists", "missing"):
            if given:
                raise ValueError(f"'{self.op}' takes no value")
        elif len(given) != 1:
            raise ValueError("give exactly one of value, ref or expr")
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"'{self.op}' needs a list value")
        return self


class Pattern(_Strict):
    bind: str
    type: str
    all: tuple[Test, ...] = ()
    any: tuple[Test, ...] = ()

    @field_validator("bind")
    @classmethod
    def _bind_name(cls, v: str) -> str:
        if not _NAME.match(v) or v in RESERVED_BINDS:
            raise ValueError(f"bind name {v!r} must be lower_snake_case and not one of {sorted(RESERVED_BINDS)}")
        return v


class Source(_Strict):
    label: str
    url: str | None = None
    confidence: Literal["C", "S", "U"] | None = None


class FindingTemplate(_Strict):
    code: str
    category: str
    indicator: Literal["info", "warning", "critical"]
    summary: str
    detail: str = ""
    # Next-step options: guideline line, evidence level, eligibility... (values may be "=bind.field")
    attributes: dict[str, Scalar] = Field(default_factory=dict)
    # What to order if the option is taken: {kind: medication, ingredient: ...} or {kind: service, service: ...}
    proposal: dict[str, Scalar] | None = None


class Rule(_Strict):
    id: str
    version: str
    status: Literal["active", "draft", "retired"] = "active"
    title: str
    source: Source
    pri: int = Field(default=0, ge=0, le=65535)
    when: tuple[Pattern, ...]
    finding: FindingTemplate | None = None
    derive: dict[str, Scalar] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_negation(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(isinstance(p, dict) and "not" in p for p in data.get("when") or []):
            raise ValueError(
                "negated patterns ('not') are not supported: durable_rules 2.0.28 misfires or crashes on them "
                "(docs/engine.md). Express absence as a fact field computed from the record instead."
            )
        return data

    @model_validator(mode="after")
    def _has_effect(self) -> Rule:
        if self.finding is None and self.derive is None:
            raise ValueError("a rule needs a finding, a derive, or both")
        if not self.when:
            raise ValueError("a rule needs at least one pattern")
        if self.derive is not None and "type" not in self.derive:
            raise ValueError("derive needs a type")
        return self

    @property
    def patterns(self) -> list[Pattern]:
        return list(self.when)


class Category(_Strict):
    label: str
    min: float
    max: float


class Totals(_Strict):
    """How a staging model's total is computed from the points its rules derive (`staging_point` facts):
    the model's definition, kept as data beside its rules."""

    model: str
    method: Literal["sum", "max", "level"]
    labels: dict[str, str] = Field(default_factory=dict)
    required_components: tuple[str, ...] = ()
    not_applicable: str | None = None
    categories: tuple[Category, ...] = ()


class Module(_Strict):
    module: str
    version: str
    stage: Stage
    title: str
    description: str = ""
    source: Source | None = None
    totals: Totals | None = None
    option_order: tuple[str, ...] = ()  # next-step options: the order a site prefers, by finding code
    rules: tuple[Rule, ...]


# ---------------------------------------------------------------------------------- loading


def _resolve_config(value: Any, config: SiteConfig, where: str) -> Any:
    if isinstance(value, str) and value.startswith("$config."):
        name = value[len("$config.") :]
        if name not in config.settings:
            raise KnowledgeError(f"{where}: unknown setting {name!r}")
        return config[name]
    if isinstance(value, str) and value.startswith("$threshold."):
        # `$threshold.<analyte>.<name>`: a threshold from rules/catalog/observations.yaml, with its provenance there.
        name = value[len("$threshold.") :]
        if name not in config.thresholds:
            raise KnowledgeError(f"{where}: unknown threshold {name!r} (rules/catalog/observations.yaml)")
        return config.thresholds[name]
    if isinstance(value, list):
        return [_resolve_config(v, config, where) for v in value]
    if isinstance(value, dict):
        return {k: _resolve_config(v, config, where) for k, v in value.items()}
    return value


def load_module(path: Path, config: SiteConfig) -> Module:
    raw = read_yaml(path)
    resolved = _resolve_config(raw, config, str(path))
    try:
        return Module.model_validate(resolved)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:8])
        raise KnowledgeError(problems, str(path)) from None


def rule_module_paths(rules_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in rules_dir.rglob("*.yaml")
        if p.name != "config.yaml" and "catalog" not in p.relative_to(rules_dir).parts
    )


def load_modules(rules_dir: Path, config: SiteConfig) -> list[Module]:
    modules = [load_module(p, config) for p in rule_module_paths(rules_dir)]
    seen: dict[str, str] = {}
    for m in modules:
        for r in m.rules:
            if r.id in seen:
                raise KnowledgeError(f"duplicate rule id {r.id!r} (also in module {seen[r.id]})", m.module)
            seen[r.id] = m.module
    return modules
