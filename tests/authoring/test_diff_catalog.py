"""`cds rules diff` (a threshold change changes exactly the patients it should) and `cds rules catalog`."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cds.authoring.cases import load_cases
from cds.authoring.diff import diff_rules
from cds.cli import app

from .conftest import PATIENTS, RULES
from .util import edit

runner = CliRunner()


def test_threshold_change_changes_the_expected_patients(rules_copy: Path) -> None:
    edit(rules_copy / "config.yaml", "  min_trial_weeks:\n    value: 6", "  min_trial_weeks:\n    value: 8")
    cases, _ = load_cases([PATIENTS])
    cases = [c for c in cases if c.name.startswith("adequacy/")]
    diffs = {d.case: d for d in diff_rules(RULES, rules_copy, cases, "reference")}
    seven = diffs["adequacy/duration-too-short/out-citalopram-20mg-7-weeks"]
    assert seven.trials == [("citalopram from 2025-09-01", "adequate/nonresponse", "inadequate_duration/nonresponse")]
    assert ("trial-duration-too-short", "citalopram from 2025-09-01") in {(c, s) for c, s, _ in seven.added}
    assert seven.expectations == (True, False)
    ten = diffs["adequacy/adequate/in-sertraline-100mg-10-weeks"]
    assert not ten.trials and not ten.trd_status  # 10 weeks is adequate under both
    result = runner.invoke(
        app,
        [
            "rules",
            "diff",
            str(RULES),
            str(rules_copy),
            "--patients",
            str(PATIENTS / "adequacy"),
            "--evaluator",
            "reference",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "citalopram from 2025-09-01: adequate/nonresponse → inadequate_duration/nonresponse" in result.output


def test_catalog_markdown_and_html(tmp_path: Path) -> None:
    out = tmp_path / "catalog.md"
    result = runner.invoke(app, ["rules", "catalog", "--out", str(out), "--patients", str(PATIENTS)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "### adequacy.dose-below-minimum" in text
    section = text[text.index("### adequacy.dose-below-minimum") :].split("\n### ")[0]
    assert "needs clinical review" in section  # the rule is tagged S
    assert "`min_trial_weeks` = 6 weeks [C" in text
    assert "adequacy/dose-below-minimum/in-venlafaxine-75mg" in section
    html = tmp_path / "catalog.html"
    result = runner.invoke(
        app, ["rules", "catalog", "--format", "html", "--out", str(html), "--patients", str(PATIENTS / "trd")]
    )
    assert result.exit_code == 0
    assert "<h3 id='trd.criteria-met'>" in html.read_text()
