"""`cds validate`: pass and fail, expected vs actual side by side, JUnit XML, coverage report."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from typer.testing import CliRunner

from cds.cli import app

from .conftest import PATIENTS

runner = CliRunner()
CASE = PATIENTS / "trd" / "criteria-not-met" / "in-one-failed-trial.yaml"


def _library(tmp_path: Path, wrong_status: bool) -> Path:
    lib = tmp_path / "cases" / "trd" / "criteria-not-met"
    lib.mkdir(parents=True)
    (lib / "in-one-failed-trial.yaml").write_text(CASE.read_text())
    text = CASE.read_text()
    if wrong_status:
        text = text.replace("trd_status: does_not_meet", "trd_status: meets")
    (lib / "in-copy.yaml").write_text(text)
    return tmp_path / "cases"


def test_passing_library(tmp_path: Path) -> None:
    lib = _library(tmp_path, wrong_status=False)
    junit = tmp_path / "junit.xml"
    result = runner.invoke(app, ["validate", str(lib), "--evaluator", "both", "--junit", str(junit)])
    assert result.exit_code == 0, result.output
    assert "4 passed, 0 failed" in result.output
    assert "rule coverage" in result.output and "Rules that never fired" in result.output
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "4" and suite.get("failures") == "0"


def test_failing_case_shows_expected_and_actual_and_exits_non_zero(tmp_path: Path) -> None:
    lib = _library(tmp_path, wrong_status=True)
    junit = tmp_path / "junit.xml"
    result = runner.invoke(app, ["validate", str(lib), "--junit", str(junit), "--no-coverage"])
    assert result.exit_code == 1
    assert "FAIL trd/criteria-not-met/in-copy" in result.output
    row = next(line for line in result.output.splitlines() if line.strip().startswith("trd_status"))
    assert "meets" in row and "does_not_meet" in row
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "1"
    failure = suite.find("testcase[@name='in-copy']/failure")
    assert failure is not None and "trd_status: expected meets, got does_not_meet" in (failure.get("message") or "")


def test_unreadable_case_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "description: x\nnow: 2026-01-15\nresources: [{phq9: {date: 2025-01-01, scor: 1}}]\nexpect: {}\n"
    )
    result = runner.invoke(app, ["validate", str(tmp_path), "--no-coverage"])
    assert result.exit_code == 1
    assert "unknown keys" in result.output


def test_coverage_reports_conditions_never_decisive(tmp_path: Path) -> None:
    lib = _library(tmp_path, wrong_status=False)
    result = runner.invoke(app, ["validate", str(lib), "-q"])
    assert "Conditions never decisive" in result.output
    assert "adequacy.adequate: trial.weeks_at_adequate_dose >= 6 — never false" in result.output
