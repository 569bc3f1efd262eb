"""`cds rules lint`: every problem kind, with file, line and a suggestion, on broken copies of rules/."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cds.authoring.lint import Problem, lint
from cds.cli import app

from .util import edit, line_of

runner = CliRunner()


def _only(problems: list[Problem], kind: str) -> Problem:
    found = [p for p in problems if p.kind == kind]
    assert len(found) == 1, problems
    return found[0]


def _errors(rules: Path) -> list[Problem]:
    return [p for p in lint(rules, compile_rules=False) if p.severity == "error"]


def test_shipped_rules_have_no_errors_and_compile(rules_copy: Path) -> None:
    assert [p for p in lint(rules_copy) if p.severity == "error"] == []


def test_unknown_field_with_suggestion(rules_copy: Path) -> None:
    path = rules_copy / "adequacy.yaml"
    edit(path, '{field: weeks_at_adequate_dose, op: ">="', '{field: weeks_at_adequat_dose, op: ">="')
    p = _only(_errors(rules_copy), "unknown-field")
    assert (p.path, p.line) == (path, line_of(path, "weeks_at_adequat_dose"))
    assert p.suggestion == "weeks_at_adequate_dose"


def test_unknown_value_of_a_closed_vocabulary(rules_copy: Path) -> None:
    path = rules_copy / "trd.yaml"
    edit(path, '{field: outcome, op: "==", value: intolerance}', '{field: outcome, op: "==", value: intolerant}')
    p = _only(_errors(rules_copy), "unknown-value")
    assert p.line == line_of(path, "value: intolerant}") and p.suggestion == "intolerance"


def test_unknown_setting_with_suggestion(rules_copy: Path) -> None:
    path = rules_copy / "trd_status.yaml"
    edit(path, "$config.trd_min_failed_trials", "$config.trd_min_failed_trial")
    p = _only(_errors(rules_copy), "unknown-setting")
    assert p.line == line_of(path, '$config.trd_min_failed_trial"') and p.suggestion == "trd_min_failed_trials"


def test_unknown_type_never_produced(rules_copy: Path) -> None:
    path = rules_copy / "data_quality.yaml"
    edit(path, "type: data_issue", "type: data_isue")
    p = _only(_errors(rules_copy), "unknown-type")
    assert p.line == line_of(path, "type: data_isue") and p.suggestion == "data_issue"
    assert "can never fire" in p.message


def test_duplicate_rule_id(rules_copy: Path) -> None:
    path = rules_copy / "data_quality.yaml"
    edit(path, "id: data-quality.implausible-dose", "id: data-quality.invalid-resource")
    p = _only(_errors(rules_copy), "duplicate-id")
    lines = [
        i for i, text in enumerate(path.read_text().splitlines(), 1) if "id: data-quality.invalid-resource" in text
    ]
    assert p.path == path and p.line == lines[1]
    assert str(path) in p.message


def test_schema_error_with_line_missing_version(rules_copy: Path) -> None:
    path = rules_copy / "trd_status.yaml"
    text = path.read_text()
    target = line_of(path, "- id: trd.insufficient-data")
    path.write_text(
        text.replace('  - id: trd.insufficient-data\n    version: "1.0.0"\n', "  - id: trd.insufficient-data\n")
    )
    p = _only(_errors(rules_copy), "schema")
    assert p.line == target and "version" in p.message


def test_missing_source_citation_and_confidence(rules_copy: Path) -> None:
    path = rules_copy / "trd.yaml"
    edit(path, ", confidence: S}", "}")  # outcome.response-lost loses its confidence tag
    problems = lint(rules_copy, compile_rules=False)
    p = _only(problems, "source")
    assert p.severity == "warning" and "response-lost" in p.message and p.line == line_of(path, "Tachyphylaxis")
    result = runner.invoke(app, ["rules", "lint", str(rules_copy), "--strict", "--no-compile"])
    assert result.exit_code == 1


def test_threshold_outside_plausible_range(rules_copy: Path) -> None:
    path = rules_copy / "config.yaml"
    edit(path, "  min_trial_weeks:\n    value: 6", "  min_trial_weeks:\n    value: 60")
    p = _only(_errors(rules_copy), "implausible-threshold")
    assert p.path == path and p.line == line_of(path, "value: 60") and "[4, 12]" in p.message


def test_contradictory_tests_never_fire(rules_copy: Path) -> None:
    path = rules_copy / "adequacy.yaml"
    edit(
        path,
        '          - {field: dates_known, op: "==", value: false}',
        '          - {field: dates_known, op: "==", value: false}\n'
        '          - {field: dates_known, op: "==", value: true}',
    )
    p = _only(_errors(rules_copy), "never-fires")
    assert "adequacy.dates-unknown" in p.message


def test_unknown_finding_code(rules_copy: Path) -> None:
    path = rules_copy / "adequacy.yaml"
    edit(path, "code: trial-dose-below-minimum", "code: trial-dose-below-minimun")
    p = _only(_errors(rules_copy), "unknown-code")
    assert p.line == line_of(path, "trial-dose-below-minimun") and p.suggestion == "trial-dose-below-minimum"


def test_yaml_syntax_error_line(rules_copy: Path) -> None:
    path = rules_copy / "trd_status.yaml"
    edit(path, "    title: Enough adequate failed trials in the current episode", "    title: [unclosed")
    p = _only(_errors(rules_copy), "yaml")
    assert p.path == path and p.line is not None


def test_cli_reports_file_line_and_suggestion(rules_copy: Path) -> None:
    path = rules_copy / "adequacy.yaml"
    edit(path, '{field: weeks_at_adequate_dose, op: ">="', '{field: weeks_at_adequat_dose, op: ">="')
    result = runner.invoke(app, ["rules", "lint", str(rules_copy)])
    assert result.exit_code == 1
    assert f"{path}:{line_of(path, 'weeks_at_adequat_dose')}" in result.output
    assert "did you mean 'weeks_at_adequate_dose'" in result.output
