"""Every bundled example gives the clinically expected trials and TRD status, on both evaluators, and its
JSON follows the published contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds.evaluation import Evaluator
from cds.render.json_contract import to_contract
from tests.conftest import EXAMPLES, NOW, example_files

EXPECTED = json.loads((EXAMPLES / "expected.json").read_text())
TRIAL_KEYS = {
    "ingredient",
    "rxnorm",
    "drug_class",
    "start",
    "end",
    "max_daily_dose_mg",
    "min_adequate_dose_mg",
    "weeks_at_adequate_dose",
    "adequacy",
    "outcome",
    "improvement_pct",
    "evidence",
}
FINDING_KEYS = {"code", "rule", "category", "indicator", "summary", "detail", "evidence", "source"}
ADEQUACY = {"adequate", "inadequate_dose", "inadequate_duration", "unknown"}
OUTCOMES = {"remission", "response", "partial_response", "nonresponse", "intolerance", "unknown"}


def test_every_example_has_an_expectation() -> None:
    assert {p.name for p in example_files()} == set(EXPECTED)
    assert len(EXPECTED) >= 8


@pytest.mark.parametrize("kind", ["durable", "reference"])
@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.stem)
def test_example(path: Path, kind: str, durable: Evaluator, reference: Evaluator) -> None:
    ev = (durable if kind == "durable" else reference).evaluate_path(path, NOW)
    want = EXPECTED[path.name]
    got = [
        {"ingredient": t.trial.ingredient, "adequacy": t.adequacy, "outcome": t.trial.outcome.outcome}
        for t in ev.trials
        if t.trial.in_current_episode
    ]
    expected = [{k: t[k] for k in ("ingredient", "adequacy", "outcome")} for t in want["trials"]]
    assert (ev.trd_status, ev.failed_adequate_trials, got) == (
        want["trd_status"],
        want["failed_adequate_trials"],
        expected,
    )


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.stem)
def test_json_contract(path: Path, durable: Evaluator) -> None:
    doc = json.loads(json.dumps(to_contract(durable.evaluate_path(path, NOW))))
    assert {"patient", "now", "knowledge_version", "trials", "trd", "staging", "findings"} <= set(doc)
    assert doc["now"] == NOW.isoformat()
    assert doc["trd"]["status"] in {"meets", "does_not_meet", "insufficient_data"}
    assert isinstance(doc["trd"]["failed_adequate_trials"], int)
    assert set(doc["staging"]) >= {"thase_rush", "mgh", "european", "maudsley"}
    for trial in doc["trials"]:
        assert set(trial) >= TRIAL_KEYS
        assert trial["adequacy"] in ADEQUACY and trial["outcome"] in OUTCOMES
        assert trial["evidence"], "every trial names the resources it came from"
    codes = json.loads((EXAMPLES.parent / "fhir_profiles" / "CodeSystem-trd-cds-finding.json").read_text())
    known = {c["code"] for c in codes["concept"]}
    for finding in doc["findings"]:
        assert set(finding) >= FINDING_KEYS
        assert finding["code"] in known
        assert finding["indicator"] in {"info", "warning", "critical"}
        assert finding["source"]["label"]
        assert "{" not in finding["summary"] + finding["detail"], "template placeholders left unrendered"
    trd_codes = [f["code"] for f in doc["findings"] if f["category"] == "trd" and f["code"].startswith("trd-")]
    assert len(trd_codes) == 1, "exactly one TRD status finding"


def test_output_is_deterministic(durable: Evaluator) -> None:
    path = EXAMPLES / "08-messy-record.json"
    first = json.dumps(to_contract(durable.evaluate_path(path, NOW)))
    assert all(json.dumps(to_contract(durable.evaluate_path(path, NOW))) == first for _ in range(3))


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.stem)
def test_staging_totals_add_up_from_their_components(path: Path, durable: Evaluator) -> None:
    st = to_contract(durable.evaluate_path(path, NOW))["staging"]
    points = {m: [c["points"] for c in st[m]["components"]] for m in ("thase_rush", "mgh", "maudsley")}
    assert st["thase_rush"]["stage"] == max(points["thase_rush"])
    if st["mgh"]["computed"]:
        assert st["mgh"]["score"] == sum(points["mgh"])
    if st["maudsley"]["computed"]:
        assert st["maudsley"]["score"] == sum(points["maudsley"])
        assert 3 <= st["maudsley"]["score"] <= 15
    else:
        assert st["maudsley"]["reason"]
    assert st["dm_trd"]["computed"] is False
    for model in ("thase_rush", "mgh", "european", "maudsley"):
        assert all(c["evidence"] for c in st[model]["components"]), model
