"""`cds rules lint`: everything that can be wrong in a rules directory, with file, line and a suggestion.

Checks: YAML syntax and the rule schema (cds/engine/ir.py); unknown `$config.*` settings; thresholds outside
a setting's plausible `range`; duplicate rule ids; missing source citation, confidence or version; fact types
no view builder or rule produces; unknown fact fields and values outside a field's value set (with
did-you-mean); tests that contradict each other, so the rule can never fire; `ref` comparisons that
durable_rules gets wrong when the field is missing; finding codes not in the CodeSystem; template
placeholders naming unknown binds or settings; and a dry compile on both evaluators.

Known fact fields come from one place: the base fact schema in cds/engine/views.py (FACT_SCHEMA) plus the
facts the rules themselves derive.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from cds.engine.base import StageRules
from cds.engine.ir import Expr, Module, Pattern, Rule, Test, _resolve_config, rule_module_paths
from cds.engine.views import FACT_SCHEMA, FactField
from cds.errors import CdsError, KnowledgeError
from cds.knowledge import Knowledge
from cds.knowledge.config import SiteConfig
from cds.knowledge.loader import YAML_LOADER, default_profiles_dir, load_knowledge
from cds.knowledge.models import SiteConfigFile

Severity = Literal["error", "warning"]
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\}")
# Template scopes the runner provides besides the bound facts (cds/engine/runner.py `_findings`).
GLOBAL_SCOPES = frozenset({"config", "context"})
_LOWER = {">", ">="}
_UPPER = {"<", "<="}


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int | None
    severity: Severity
    kind: str
    message: str
    suggestion: str | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        hint = f" (did you mean {self.suggestion!r}?)" if self.suggestion else ""
        return f"{where}: {self.severity} [{self.kind}] {self.message}{hint}"


def suggest(name: str, candidates: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


# ---------------------------------------------------------------------------------- YAML with line marks


class Located:
    """A YAML document with the line of every node, addressed by the path pydantic reports (keys and indexes)."""

    def __init__(self, text: str) -> None:
        self.root = yaml.compose(text, Loader=YAML_LOADER)
        self.data = yaml.load(text, Loader=YAML_LOADER)

    def line(self, path: Sequence[Any]) -> int | None:
        node = self.root
        if node is None:
            return None
        line = node.start_mark.line + 1
        for part in path:
            nxt = None
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                        nxt = v
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                nxt = node.value[part]
            if nxt is None:
                break
            node = nxt
            line = node.start_mark.line + 1
        return line


def _read(path: Path, problems: list[Problem]) -> Located | None:
    try:
        return Located(path.read_text(encoding="utf-8"))
    except OSError as exc:
        problems.append(Problem(path, None, "error", "unreadable", f"cannot read: {exc.strerror}"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problems.append(Problem(path, line, "error", "yaml", f"not valid YAML: {getattr(exc, 'problem', exc)}"))
    return None


def _schema_problems(path: Path, doc: Located, exc: ValidationError, prefix: Sequence[Any] = ()) -> list[Problem]:
    out = []
    for e in exc.errors():
        loc = [*prefix, *e["loc"]]
        where = ".".join(str(p) for p in loc)
        out.append(Problem(path, doc.line(loc), "error", "schema", f"{where}: {e['msg']}"))
    return out


# ---------------------------------------------------------------------------------- config


@dataclass
class ConfigInfo:
    path: Path
    doc: Located | None
    values: dict[str, float] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    site: SiteConfig | None = None  # as the engine loads it: resolves every `$...` reference the IR knows

    def names(self) -> list[str]:
        """Every name a `$prefix.name` reference can use, for did-you-mean."""
        extra = getattr(self.site, "thresholds", {}) if self.site is not None else {}
        return [*self.values, *extra]


def _lint_config(
    rules_dir: Path, profiles_dir: Path | None, problems: list[Problem], knowledge: Knowledge | None = None
) -> ConfigInfo:
    path = rules_dir / "config.yaml"
    doc = _read(path, problems)
    info = ConfigInfo(path, doc)
    if doc is None:
        return info
    try:
        cfg = SiteConfigFile.model_validate(doc.data)
    except ValidationError as exc:
        problems += _schema_problems(path, doc, exc)
        settings = doc.data.get("settings", {}) if isinstance(doc.data, dict) else {}
        info.values = {
            k: float(v["value"])
            for k, v in (settings or {}).items()
            if isinstance(v, dict) and isinstance(v.get("value"), int | float)
        }
        return info
    try:
        info.site = (knowledge or load_knowledge(rules_dir, profiles_dir)).config
    except CdsError as exc:
        problems.append(Problem(path, None, "error", "knowledge", f"the knowledge files do not load: {exc}"))
    for name, s in cfg.settings.items():
        info.values[name] = s.value
        if s.range is None:
            continue
        lo, hi = s.range
        info.ranges[name] = (lo, hi)
        if lo > hi:
            problems.append(
                Problem(
                    path,
                    doc.line(["settings", name, "range"]),
                    "error",
                    "range",
                    f"{name}: range [{lo:g}, {hi:g}] is empty",
                )
            )
        elif not lo <= s.value <= hi:
            problems.append(
                Problem(
                    path,
                    doc.line(["settings", name, "value"]),
                    "error",
                    "implausible-threshold",
                    f"{name} = {s.value:g} {s.unit} is outside its plausible range [{lo:g}, {hi:g}]",
                )
            )
    return info


# ---------------------------------------------------------------------------------- modules


@dataclass
class ModuleFile:
    path: Path
    doc: Located
    module: Module | None = None


def _resolve(value: Any, where: list[Any], cfg: ConfigInfo, mf: Path, doc: Located, problems: list[Problem]) -> Any:
    if isinstance(value, str) and value.startswith("$") and "." in value and cfg.site is not None:
        try:  # the engine's own resolver, so lint knows every reference syntax the IR knows
            return _resolve_config(value, cfg.site, "")
        except KnowledgeError as exc:
            name = value.partition(".")[2]
            message = f"{value}: {str(exc).lstrip(': ')}"
            problems.append(
                Problem(mf, doc.line(where), "error", "unknown-setting", message, suggest(name, cfg.names()))
            )
            return value  # left unresolved: later checks skip `$...` values
    if isinstance(value, str) and value.startswith("$config."):
        name = value[len("$config.") :]
        if name not in cfg.values:
            problems.append(
                Problem(
                    mf,
                    doc.line(where),
                    "error",
                    "unknown-setting",
                    f"unknown setting $config.{name}",
                    suggest(name, list(cfg.values)),
                )
            )
            return value
        return cfg.values[name]
    if isinstance(value, list):
        return [_resolve(v, [*where, i], cfg, mf, doc, problems) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _resolve(v, [*where, k], cfg, mf, doc, problems) for k, v in value.items()}
    return value


def _config_refs(value: Any, where: list[Any]) -> Iterator[tuple[str, list[Any]]]:
    if isinstance(value, str) and value.startswith("$config."):
        yield value[len("$config.") :], where
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _config_refs(v, [*where, i])
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _config_refs(v, [*where, k])


def _load_module(path: Path, cfg: ConfigInfo, problems: list[Problem]) -> ModuleFile | None:
    doc = _read(path, problems)
    if doc is None:
        return None
    mf = ModuleFile(path, doc)
    if not isinstance(doc.data, dict):
        problems.append(Problem(path, 1, "error", "schema", "a rule module must be a mapping"))
        return mf
    resolved = _resolve(doc.data, [], cfg, path, doc, problems)
    try:
        mf.module = Module.model_validate(resolved)
    except ValidationError as exc:
        problems += _schema_problems(path, doc, exc)
    return mf


# ---------------------------------------------------------------------------------- fact vocabulary


@dataclass
class Vocabulary:
    """Fact types each stage sees, and their fields: the base schema plus what the stage's rules derive."""

    types: dict[str, dict[str, dict[str, FactField]]]  # stage -> type -> field -> FactField

    @classmethod
    def build(cls, modules: Sequence[Module]) -> Vocabulary:
        types: dict[str, dict[str, dict[str, FactField]]] = {"classify": {}, "conclude": {}}
        for name, ft in FACT_SCHEMA.items():
            types.setdefault(ft.stage, {})[name] = dict(ft.fields)
        derived_values: dict[tuple[str, str, str], set[str]] = {}
        for m in modules:
            for r in m.rules:
                if r.derive is None:
                    continue
                dtype = str(r.derive["type"])
                fields = types.setdefault(m.stage, {}).setdefault(dtype, {"id": FactField("str")})
                binds = {p.bind: p.type for p in r.when}
                for key, value in r.derive.items():
                    if key == "type":
                        continue
                    if isinstance(value, str) and value.startswith("="):
                        bind, _, fname = value[1:].partition(".")
                        src = types.get(m.stage, {}).get(binds.get(bind, ""), {}).get(fname)
                        fields.setdefault(key, FactField(src.kind if src else "str"))
                    else:
                        kind: Any = "bool" if isinstance(value, bool) else "str" if isinstance(value, str) else "number"
                        fields.setdefault(key, FactField(kind))
                        if isinstance(value, str):
                            derived_values.setdefault((m.stage, dtype, key), set()).add(value)
        for (stage, dtype, key), values in derived_values.items():
            f = types[stage][dtype][key]
            types[stage][dtype][key] = FactField(f.kind, tuple(sorted(values)))
        return cls(types)


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "str"


def _operand_refs(x: Any) -> Iterator[str]:
    if isinstance(x, Expr):
        yield from _operand_refs(x.left)
        yield from _operand_refs(x.right)
    elif isinstance(x, str):
        yield x


# ---------------------------------------------------------------------------------- per-rule checks


@dataclass
class _Ctx:
    path: Path
    doc: Located
    stage: str
    vocab: Vocabulary
    codes: set[str]
    settings: dict[str, float]
    problems: list[Problem]

    def add(self, where: list[Any], severity: Severity, kind: str, message: str, suggestion: str | None = None) -> None:
        self.problems.append(Problem(self.path, self.doc.line(where), severity, kind, message, suggestion))


def _check_rule(ctx: _Ctx, r: Rule, ri: int) -> None:
    base = ["rules", ri]
    if not _SEMVER.match(r.version):
        ctx.add([*base, "version"], "warning", "version", f"{r.id}: version {r.version!r} is not MAJOR.MINOR.PATCH")
    if not r.source.label.strip():
        ctx.add([*base, "source"], "error", "source", f"{r.id}: empty source citation")
    if r.source.confidence is None:
        ctx.add([*base, "source"], "warning", "source", f"{r.id}: source has no confidence tag (C, S or U)")
    types = ctx.vocab.types.get(ctx.stage, {})
    binds: dict[str, str] = {}
    for pi, p in enumerate(r.when):
        pw = [*base, "when", pi]
        if p.type not in types:
            elsewhere = [s for s, ts in ctx.vocab.types.items() if p.type in ts]
            msg = f"{r.id}: no fact of type {p.type!r} is produced in stage {ctx.stage!r}"
            msg += f" (it exists in stage {elsewhere[0]!r})" if elsewhere else ""
            ctx.add(
                [*pw, "type"], "error", "unknown-type", msg + "; the rule can never fire", suggest(p.type, list(types))
            )
            binds[p.bind] = p.type
            continue
        fields = types[p.type]
        for group in ("all", "any"):
            for ti, t in enumerate(getattr(p, group)):
                _check_test(ctx, r, p, t, [*pw, group, ti], fields, binds, types)
        _check_contradictions(ctx, r, p, pw, fields)
        binds[p.bind] = p.type
    if r.finding is not None:
        fw = [*base, "finding"]
        if ctx.codes and r.finding.code not in ctx.codes:
            ctx.add(
                [*fw, "code"],
                "error",
                "unknown-code",
                f"{r.id}: finding code {r.finding.code!r} is not in the CodeSystem",
                suggest(r.finding.code, sorted(ctx.codes)),
            )
        for part in ("summary", "detail"):
            for bind, fname in _PLACEHOLDER.findall(getattr(r.finding, part)):
                if bind == "config":
                    if fname not in ctx.settings:
                        ctx.add(
                            [*fw, part],
                            "error",
                            "unknown-setting",
                            f"{r.id}: {{config.{fname}}} is not a setting",
                            suggest(fname, list(ctx.settings)),
                        )
                elif bind not in binds and bind not in GLOBAL_SCOPES:
                    ctx.add(
                        [*fw, part],
                        "error",
                        "unknown-bind",
                        f"{r.id}: {{{bind}.{fname}}} names no bound fact",
                        suggest(bind, list(binds)),
                    )
    if r.derive is not None:
        for key, value in r.derive.items():
            if isinstance(value, str) and value.startswith("="):
                bind, _, fname = value[1:].partition(".")
                if bind not in binds:
                    ctx.add(
                        [*base, "derive", key],
                        "error",
                        "unknown-bind",
                        f"{r.id}: derive {key}: {value!r} names no bound fact",
                        suggest(bind, list(binds)),
                    )
                elif fname not in types.get(binds[bind], {}):
                    ctx.add(
                        [*base, "derive", key],
                        "error",
                        "unknown-field",
                        f"{r.id}: derive {key}: {binds[bind]} has no field {fname!r}",
                        suggest(fname, list(types.get(binds[bind], {}))),
                    )


def _check_test(
    ctx: _Ctx,
    r: Rule,
    p: Pattern,
    t: Test,
    where: list[Any],
    fields: dict[str, FactField],
    binds: dict[str, str],
    types: dict[str, dict[str, FactField]],
) -> None:
    if t.field not in fields:
        ctx.add(
            [*where, "field"],
            "error",
            "unknown-field",
            f"{r.id}: fact type {p.type!r} has no field {t.field!r}",
            suggest(t.field, list(fields)),
        )
        return
    f = fields[t.field]
    refs: list[str] = []
    if t.ref is not None:
        refs.append(t.ref)
    if t.expr is not None:
        refs += list(_operand_refs(t.expr))
    for ref in refs:
        bind, dot, fname = ref.partition(".")
        if not dot:
            if ref not in fields:
                ctx.add(
                    where,
                    "error",
                    "unknown-field",
                    f"{r.id}: {p.type!r} has no field {ref!r}",
                    suggest(ref, list(fields)),
                )
            # A missing referenced field is handled by the durable adapter (it requires the field to exist),
            # so both evaluators read such a test as false: nothing to warn about.
        elif bind not in binds:
            ctx.add(
                where,
                "error",
                "unknown-bind",
                f"{r.id}: {ref!r} names no earlier pattern's bind",
                suggest(bind, list(binds)),
            )
        elif fname not in types.get(binds[bind], {}):
            ctx.add(
                where,
                "error",
                "unknown-field",
                f"{r.id}: {binds[bind]!r} has no field {fname!r}",
                suggest(fname, list(types.get(binds[bind], {}))),
            )
    values = t.value if isinstance(t.value, list) else [t.value] if t.value is not None else []
    for v in values:
        if isinstance(v, str) and v.startswith("$"):
            continue  # an unresolved reference, reported already
        if t.op in ("<", "<=", ">", ">=") and f.kind != "number":
            ctx.add(where, "error", "type-mismatch", f"{r.id}: {t.field} is {f.kind}; {t.op} needs a number field")
        elif _kind_of(v) != f.kind:
            ctx.add(
                where, "error", "type-mismatch", f"{r.id}: {t.field} is {f.kind}, compared with {v!r} ({_kind_of(v)})"
            )
        elif f.values and isinstance(v, str) and v not in f.values:
            ctx.add(
                where,
                "error",
                "unknown-value",
                f"{r.id}: {v!r} is not a value of {p.type}.{t.field} ({', '.join(f.values)})",
                suggest(v, list(f.values)),
            )


def _check_contradictions(ctx: _Ctx, r: Rule, p: Pattern, pw: list[Any], fields: dict[str, FactField]) -> None:
    """Tests in `all` on the same field that cannot hold together: the rule can never fire."""
    by_field: dict[str, list[Test]] = {}
    for t in p.all:
        if t.ref is None and t.expr is None:
            by_field.setdefault(t.field, []).append(t)
    for fname, tests in by_field.items():
        ops = {t.op for t in tests}
        reason = None
        if "missing" in ops and ops - {"missing"}:
            reason = f"{fname} is required missing and also tested"
        eqs = {json.dumps(t.value) for t in tests if t.op == "=="}
        if len(eqs) > 1:
            reason = f"{fname} must equal {' and '.join(sorted(eqs))}"
        for t in tests:
            if t.op == "!=" and json.dumps(t.value) in eqs:
                reason = f"{fname} == {t.value!r} and != {t.value!r}"
            if t.op == "in" and eqs and isinstance(t.value, list) and not any(json.dumps(v) in eqs for v in t.value):
                reason = f"{fname} == {', '.join(eqs)} but in {t.value!r}"
            if t.op == "not_in" and isinstance(t.value, list) and any(json.dumps(v) in eqs for v in t.value):
                reason = f"{fname} == {', '.join(eqs)} but not_in {t.value!r}"
        lows = [(float(t.value), t.op) for t in tests if t.op in _LOWER and isinstance(t.value, int | float)]
        highs = [(float(t.value), t.op) for t in tests if t.op in _UPPER and isinstance(t.value, int | float)]
        for lo, lop in lows:
            for hi, hop in highs:
                if lo > hi or (lo == hi and (lop == ">" or hop == "<")):
                    reason = f"{fname} {lop} {lo:g} and {fname} {hop} {hi:g}"
        closed = fields.get(fname, FactField("str")).values
        ins = [t.value for t in tests if t.op == "in" and isinstance(t.value, list)]
        if closed and ins and all(v not in closed for values in ins for v in values):
            reason = f"none of the values of {fname} is in the closed value set"
        if reason:
            ctx.add(pw, "error", "never-fires", f"{r.id}: pattern {p.bind!r} can never match: {reason}")


# ---------------------------------------------------------------------------------- driver


def finding_codes(profiles_dir: Path | None = None) -> set[str]:
    path = (profiles_dir or default_profiles_dir()) / "CodeSystem-trd-cds-finding.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()

    def walk(concepts: list[dict[str, Any]]) -> Iterator[str]:
        for c in concepts:
            yield str(c["code"])
            yield from walk(c.get("concept", []))

    return set(walk(data.get("concept", [])))


def lint(
    rules_dir: Path, profiles_dir: Path | None = None, compile_rules: bool = True, knowledge: Knowledge | None = None
) -> list[Problem]:
    """Every problem in the rules directory, errors first. An empty list means the rules are fit to load.
    `knowledge`, when given, is the same directory already loaded (saves loading it again)."""
    problems: list[Problem] = []
    cfg = _lint_config(rules_dir, profiles_dir, problems, knowledge)
    files = [mf for p in rule_module_paths(rules_dir) if (mf := _load_module(p, cfg, problems)) is not None]
    modules = [mf for mf in files if mf.module is not None]
    vocab = Vocabulary.build([mf.module for mf in modules if mf.module is not None])
    codes = finding_codes(profiles_dir)
    seen: dict[str, tuple[Path, int | None]] = {}
    for mf in modules:
        m = mf.module
        assert m is not None
        if m.source is None:
            mf_line = mf.doc.line(["module"])
            problems.append(Problem(mf.path, mf_line, "warning", "source", f"module {m.module}: no source citation"))
        if not _SEMVER.match(m.version):
            problems.append(
                Problem(
                    mf.path,
                    mf.doc.line(["version"]),
                    "warning",
                    "version",
                    f"module version {m.version!r} is not MAJOR.MINOR.PATCH",
                )
            )
        ctx = _Ctx(mf.path, mf.doc, m.stage, vocab, codes, cfg.values, problems)
        for ri, r in enumerate(m.rules):
            line = mf.doc.line(["rules", ri, "id"])
            if r.id in seen:
                other = seen[r.id]
                problems.append(
                    Problem(
                        mf.path,
                        line,
                        "error",
                        "duplicate-id",
                        f"rule id {r.id!r} is also defined at {other[0]}:{other[1]}",
                    )
                )
            else:
                seen[r.id] = (mf.path, line)
            _check_rule(ctx, r, ri)
        for name, where in _config_refs(mf.doc.data, []):
            if name in cfg.ranges:
                lo, hi = cfg.ranges[name]
                if not lo <= cfg.values[name] <= hi:
                    problems.append(
                        Problem(
                            mf.path,
                            mf.doc.line(where),
                            "warning",
                            "implausible-threshold",
                            f"uses $config.{name} = {cfg.values[name]:g}, outside [{lo:g}, {hi:g}]",
                        )
                    )
    if compile_rules and not any(p.severity == "error" for p in problems):
        problems += dry_compile([mf.module for mf in modules if mf.module is not None], rules_dir)
    return sorted(problems, key=lambda p: (p.severity != "error", str(p.path), p.line or 0))


def dry_compile(modules: Sequence[Module], rules_dir: Path) -> list[Problem]:
    """Compile every stage on both evaluators and run each on no facts."""
    out: list[Problem] = []
    for stage in ("classify", "conclude"):
        rules = StageRules.from_modules(stage, modules)
        for kind in ("reference", "durable"):
            try:
                if kind == "reference":
                    from cds.engine.reference import ReferenceEvaluator

                    ReferenceEvaluator(rules).run([])
                else:
                    from cds.engine.durable import DurableEvaluator

                    # Not closed: deleting durable_rules rulesets has been seen to corrupt its heap for later
                    # evaluations in the same process (cds/engine/reload.py); a lint run is short-lived.
                    DurableEvaluator(rules).run([])
            except Exception as exc:
                out.append(
                    Problem(rules_dir, None, "error", "compile", f"stage {stage} does not compile on {kind}: {exc}")
                )
    return out
