"""Service settings: defaults < settings file (TOML or JSON) < environment variables (prefix CDS_HOOKS_).

The file is named by `cds serve --config` or the CDS_HOOKS_CONFIG environment variable; every worker process
reads the same file, so the settings travel to uvicorn's workers through that variable.
"""

from __future__ import annotations

import json
import os
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

CONFIG_ENV = "CDS_HOOKS_CONFIG"
# Asymmetric algorithms only: `none` and every symmetric (HS*) algorithm are refused whatever is configured.
SAFE_ALGORITHMS = frozenset({"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})


class OverrideReason(BaseModel):
    model_config = ConfigDict(frozen=True)
    code: str
    system: str
    display: str


DEFAULT_OVERRIDE_SYSTEM = "https://trd-cds.example.org/fhir/CodeSystem/override-reason"
DEFAULT_OVERRIDE_REASONS = (
    OverrideReason(code="already-addressed", system=DEFAULT_OVERRIDE_SYSTEM, display="Already addressed"),
    OverrideReason(code="not-applicable", system=DEFAULT_OVERRIDE_SYSTEM, display="Not applicable to this patient"),
    OverrideReason(code="record-incorrect", system=DEFAULT_OVERRIDE_SYSTEM, display="The record data is incorrect"),
    OverrideReason(code="patient-preference", system=DEFAULT_OVERRIDE_SYSTEM, display="Patient preference"),
    OverrideReason(code="clinical-judgement", system=DEFAULT_OVERRIDE_SYSTEM, display="Clinical judgement differs"),
)


class TrustedIssuer(BaseModel):
    """One CDS client allowed to call us: its keys come from a JWKS file or from allow-listed `jku` URLs."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    iss: str
    jwks_file: Path | None = None
    jku: tuple[str, ...] = ()  # JWK Set URLs we may fetch for this issuer; any other jku is refused
    tenants: tuple[str, ...] = ()  # when given, the `tenant` claim must be one of these


class HookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CDS_HOOKS_", extra="forbid", frozen=True)

    public_base_url: str = Field(
        default="http://127.0.0.1:8080",
        description="External base URL as the EHR calls it (JWT `aud` = this + the endpoint path)",
    )
    auth: Literal["jwt", "disabled-dev"] = "jwt"
    issuers: tuple[TrustedIssuer, ...] = ()
    algorithms: tuple[str, ...] = ("ES384", "RS384")
    clock_skew_seconds: int = 60
    max_token_lifetime_seconds: int = 3600
    jti_cache: Literal["database", "memory"] = "database"
    rules_reload_seconds: float = Field(
        default=5.0, description="How often rule files are checked for changes (hot reload); 0 turns it off"
    )
    issued_cards_flush_seconds: float = 2.0  # issued cards (uuid -> rule, for the report) are written in batches
    feedback_db_url: str = "sqlite:///cds-hooks-feedback.sqlite3"
    cors_origins: tuple[str, ...] = ("*",)
    max_request_bytes: int = 5_000_000
    keepalive_rebalance_every: int = Field(
        default=8,
        ge=0,
        description="Each worker closes the connection of every Nth response (keep-alive clients then reconnect to "
        "a free worker; cds/hooks/middleware.py); 0 keeps connections open",
    )
    fhir_timeout_seconds: float = 3.0
    fhir_max_pages: int = 20
    jwks_timeout_seconds: float = 3.0
    override_reasons: tuple[OverrideReason, ...] = DEFAULT_OVERRIDE_REASONS
    order_hook_categories: tuple[str, ...] = ("safety",)
    rule_docs_url: str | None = None  # "{rule}" is replaced; default: {public_base_url}/rules/{rule}
    log_level: str = "INFO"
    dev_examples: Path | None = None  # development mode only: serve these bundles as a FHIR server at /dev-fhir

    @field_validator("algorithms")
    @classmethod
    def _only_asymmetric(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [a for a in value if a not in SAFE_ALGORITHMS]
        if bad:
            raise ValueError(f"algorithms {bad} are not allowed (only asymmetric: {sorted(SAFE_ALGORITHMS)})")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @cached_property
    def override_reasons_json(self) -> tuple[dict[str, Any], ...]:
        """The override reasons as card JSON, made once (every card carries them)."""
        return tuple(r.model_dump() for r in self.override_reasons)

    @property
    def dev_mode(self) -> bool:
        return self.auth == "disabled-dev"

    def rule_docs(self, rule: str) -> str:
        template = self.rule_docs_url or f"{self.public_base_url}/rules/{{rule}}"
        return template.replace("{rule}", rule)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileSource(settings_cls))


class _FileSource(PydanticBaseSettingsSource):
    """The settings file named by CDS_HOOKS_CONFIG (TOML, or JSON by suffix)."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = os.environ.get(CONFIG_ENV)
        self._data: dict[str, Any] = read_settings_file(Path(path)) if path else {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def read_settings_file(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the settings file must hold a table/object")
    base = path.parent
    for issuer in data.get("issuers", []) or []:  # relative JWKS paths are relative to the settings file
        if isinstance(issuer, dict) and issuer.get("jwks_file") and not Path(issuer["jwks_file"]).is_absolute():
            issuer["jwks_file"] = str(base / issuer["jwks_file"])
    return data


def load_settings(config: Path | None = None) -> HookSettings:
    if config is not None:
        os.environ[CONFIG_ENV] = str(config.resolve())
    return HookSettings()
