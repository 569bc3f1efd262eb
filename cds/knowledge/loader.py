"""Load every knowledge file once: drug catalog, products, instruments, site settings, value sets."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from cds.errors import KnowledgeError
from cds.knowledge.catalog import DrugCatalog
from cds.knowledge.config import SiteConfig
from cds.knowledge.instruments import InstrumentIndex
from cds.knowledge.models import DrugCatalogFile, InstrumentFile, SiteConfigFile, SourcedValue
from cds.knowledge.observations import ObservationCatalog, load_observation_catalog
from cds.knowledge.products import load_products
from cds.knowledge.valuesets import ValueSetIndex

PROJECT_ROOT = Path(__file__).resolve().parents[2]
M = TypeVar("M", bound=BaseModel)
# libyaml's parser when PyYAML was built with it (the wheels are): the same documents as SafeLoader, 10x faster.
YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def default_rules_dir() -> Path:
    return Path(os.environ.get("CDS_RULES_DIR", PROJECT_ROOT / "rules"))


def read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.load(fh, Loader=YAML_LOADER)
    except OSError as exc:
        raise KnowledgeError(f"cannot read: {exc.strerror}", str(path)) from None
    except yaml.YAMLError as exc:
        raise KnowledgeError(f"not valid YAML: {exc}", str(path)) from None


def load_model(path: Path, model: type[M]) -> M:
    try:
        return model.model_validate(read_yaml(path))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:10])
        raise KnowledgeError(problems, str(path)) from None


@dataclass(frozen=True)
class IntoleranceTerms:
    codes: frozenset[str]
    keywords: tuple[str, ...]
    negations: tuple[str, ...] = ()

    def matches(self, codes: list[str], texts: list[str]) -> bool:
        if any(c in self.codes for c in codes):
            return True
        for text in texts:
            lowered = text.lower()
            for keyword in self.keywords:
                for m in re.finditer(re.escape(keyword), lowered):
                    clause = re.split(r"[.;:,()]", lowered[: m.start()])[-1]
                    if not any(re.search(rf"\b{re.escape(n)}\b", clause) for n in self.negations):
                        return True
        return False


@dataclass(frozen=True, eq=False)  # identity equality and hash: per-Knowledge values (cds/knowledge/cache.py) key on it
class Knowledge:
    rules_dir: Path
    config: SiteConfig
    catalog: DrugCatalog
    instruments: InstrumentIndex
    intolerance: IntoleranceTerms
    valuesets: ValueSetIndex
    observations: ObservationCatalog
    context: dict[str, str]
    services: dict[str, dict[str, Any]]  # orderable services by key (rules/catalog/services.yaml)
    version: str


def _fingerprint(*dirs: Path) -> str:
    digest = hashlib.sha256()
    for d in dirs:
        if not d.is_dir():
            continue
        for path in sorted(p for p in d.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(d)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _intolerance(path: Path) -> IntoleranceTerms:
    data = read_yaml(path) or {}
    codes = frozenset(str(c["code"]) if isinstance(c, dict) else str(c) for c in data.get("codes", []))
    keywords = tuple((k["text"] if isinstance(k, dict) else str(k)).lower() for k in data.get("keywords", []))
    negations = tuple((k["text"] if isinstance(k, dict) else str(k)).lower() for k in data.get("negation_cues", []))
    return IntoleranceTerms(codes=codes, keywords=keywords, negations=negations)


def _context(path: Path) -> dict[str, str]:
    """Context sentences (STAR*D, prevalence) that option details quote, each with its caveat in the text."""
    if not path.exists():
        return {}
    data = read_yaml(path) or {}
    return {str(k): " ".join(str(v.get("text", "")).split()) for k, v in (data.get("context") or {}).items()}


def _services(path: Path) -> dict[str, dict[str, Any]]:
    """Orderable services (rTMS, ECT, psychotherapy...) with their codes, read once with the rest of the knowledge."""
    data = (read_yaml(path) or {}).get("services") if path.exists() else None
    return {str(k): v for k, v in (data or {}).items() if isinstance(v, dict)}


def default_profiles_dir() -> Path:
    return Path(os.environ.get("CDS_PROFILES_DIR", PROJECT_ROOT / "fhir_profiles"))


def load_knowledge(rules_dir: Path | None = None, profiles_dir: Path | None = None) -> Knowledge:
    rules_dir = (rules_dir or default_rules_dir()).resolve()
    profiles_dir = (profiles_dir or default_profiles_dir()).resolve()
    catalog_dir = rules_dir / "catalog"
    config_path = rules_dir / "config.yaml"
    config = SiteConfig(load_model(config_path, SiteConfigFile), str(config_path))
    drugs = load_model(catalog_dir / "drugs.yaml", DrugCatalogFile)
    instruments = load_model(catalog_dir / "instruments.yaml", InstrumentFile)
    products = load_products(catalog_dir / "rxnorm-antidepressant-products.csv")
    observations = load_observation_catalog(catalog_dir / "observations.yaml", load_model)
    config.thresholds = {
        f"{a.id}.{name}": float(t["value"])
        for a in observations.analytes.values()
        for name, t in a.thresholds.items()
        if isinstance(t, dict) and isinstance(t.get("value"), int | float)
    }
    madrs = config.setting("madrs_remission_max")
    overrides = {"madrs": SourcedValue(value=madrs.value, source=madrs.source, confidence=madrs.confidence)}
    return Knowledge(
        rules_dir=rules_dir,
        config=config,
        catalog=DrugCatalog(drugs.drugs, products),
        instruments=InstrumentIndex(
            instruments.instruments, config.local_instrument_codes, overrides, instruments.other_observations
        ),
        intolerance=_intolerance(catalog_dir / "intolerance-terms.yaml"),
        valuesets=ValueSetIndex(profiles_dir / "valuesets"),
        observations=observations,
        context=_context(catalog_dir / "context.yaml"),
        services=_services(catalog_dir / "services.yaml"),
        version=f"{config.version}+{_fingerprint(rules_dir, profiles_dir)}",
    )


@lru_cache(maxsize=4)
def cached_knowledge(rules_dir: Path | None = None) -> Knowledge:
    return load_knowledge(rules_dir)
