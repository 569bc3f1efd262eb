"""Rule metadata for discovery descriptions and the rule documentation that cards link to.

Read from the rule modules (rules/*.yaml) through the knowledge loader: titles, versions and sources only.
The engine itself is reached only through `cds.evaluation.Evaluator`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from cds.knowledge.loader import default_profiles_dir, default_rules_dir, read_yaml

FINDING_SYSTEM = "https://trd-cds.example.org/fhir/CodeSystem/finding"


@dataclass(frozen=True)
class RuleDoc:
    rule: str
    version: str
    title: str
    module: str
    module_title: str
    source_label: str | None
    source_url: str | None
    finding_code: str | None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class RuleModule:
    module: str
    version: str
    title: str
    stage: str


@dataclass(frozen=True)
class RuleCatalog:
    modules: tuple[RuleModule, ...]
    rules: dict[str, RuleDoc]
    finding_displays: dict[str, str]
    finding_categories: dict[str, str]


def _source(value: Any) -> tuple[str | None, str | None]:
    if isinstance(value, dict):
        label, url = value.get("label"), value.get("url")
        return (str(label) if label else None, str(url) if url else None)
    return (None, None)


def load_rule_catalog(rules_dir: Path | None = None, profiles_dir: Path | None = None) -> RuleCatalog:
    rules_dir = rules_dir or default_rules_dir()
    modules: list[RuleModule] = []
    rules: dict[str, RuleDoc] = {}
    for path in sorted(rules_dir.glob("*.yaml")):
        data = read_yaml(path)
        if not isinstance(data, dict) or "module" not in data or not isinstance(data.get("rules"), list):
            continue  # config.yaml and anything that is not a rule module
        module = RuleModule(
            module=str(data["module"]),
            version=str(data.get("version", "")),
            title=str(data.get("title", data["module"])),
            stage=str(data.get("stage", "")),
        )
        modules.append(module)
        mod_label, mod_url = _source(data.get("source"))
        for rule in data["rules"]:
            if not isinstance(rule, dict) or "id" not in rule:
                continue
            label, url = _source(rule.get("source"))
            finding = rule.get("finding")
            rules[str(rule["id"])] = RuleDoc(
                rule=str(rule["id"]),
                version=str(rule.get("version", "")),
                title=str(rule.get("title", rule["id"])),
                module=module.module,
                module_title=module.title,
                source_label=label or mod_label,
                source_url=url or mod_url,
                finding_code=str(finding["code"]) if isinstance(finding, dict) and "code" in finding else None,
            )
    displays: dict[str, str] = {}
    categories: dict[str, str] = {}
    codesystem = (profiles_dir or default_profiles_dir()) / "CodeSystem-trd-cds-finding.json"
    if codesystem.is_file():
        for concept in json.loads(codesystem.read_text(encoding="utf-8")).get("concept", []):
            displays[concept["code"]] = concept.get("display", concept["code"])
            for prop in concept.get("property", []):
                if prop.get("code") == "category":
                    categories[concept["code"]] = prop.get("valueCode", "")
    return RuleCatalog(tuple(modules), rules, displays, categories)


@cache
def rule_catalog() -> RuleCatalog:
    return load_rule_catalog()
