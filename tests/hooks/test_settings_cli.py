"""Settings from a file and the environment; `cds serve` refuses bad settings before starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cds.cli import app as cli
from cds.hooks.settings import CONFIG_ENV, HookSettings, load_settings


def test_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "keys.json").write_text('{"keys": []}')
    config = tmp_path / "hooks.toml"
    config.write_text(
        'public_base_url = "https://cds.example.org/"\nfeedback_db_url = "sqlite:///x.db"\n'
        '[[issuers]]\niss = "https://ehr.example"\njwks_file = "keys.json"\n'
    )
    monkeypatch.setenv(CONFIG_ENV, "")  # restored after the test (load_settings sets it)
    monkeypatch.setenv("CDS_HOOKS_FEEDBACK_DB_URL", "postgresql://db/x")
    settings = load_settings(config)
    assert settings.public_base_url == "https://cds.example.org"
    assert settings.feedback_db_url == "postgresql://db/x"  # the environment wins over the file
    assert settings.issuers[0].jwks_file == tmp_path / "keys.json"  # relative to the settings file
    assert not settings.dev_mode


def test_symmetric_algorithms_cannot_be_configured() -> None:
    with pytest.raises(ValueError, match="not allowed"):
        HookSettings(algorithms=("HS256",))


def test_serve_refuses_bad_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV, "")  # restored after the test (load_settings sets it)
    runner = CliRunner()
    assert runner.invoke(cli, ["serve", "--config", str(tmp_path / "missing.toml")]).exit_code == 2
    assert runner.invoke(cli, ["serve", "--examples", str(tmp_path)]).exit_code == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"auth": "none"}')
    result = runner.invoke(cli, ["serve", "--config", str(bad)])
    assert result.exit_code == 2 and "settings" in result.output
