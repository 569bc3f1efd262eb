"""The command line on good and bad input: clear messages, the right exit status, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES

CDS = [sys.executable, "-m", "cds.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CDS, *args], capture_output=True, text=True, timeout=120)


def test_evaluate_json_contract() -> None:
    out = run(
        "evaluate",
        str(EXAMPLES / "01-trd-two-adequate-failures.json"),
        "--now",
        "2026-01-15",
        "--format",
        "json",
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["trd"] == {"status": "meets", "failed_adequate_trials": 2}
    assert doc["patient"] == "Patient/ex01-patient"


def test_evaluate_text_for_a_folder() -> None:
    out = run("evaluate", str(EXAMPLES), "--now", "2026-01-15")
    assert out.returncode == 0, out.stderr
    assert "MEETS the TRD definition" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not json", "not JSON"),
        (b'{"hello": "world"}', "not a FHIR resource"),
        (b"", "empty"),
        (b'{"resourceType": "Bundle", "type": "collection", "entry": []}', "no FHIR resources"),
        (b"[1, 2, 3]", "no FHIR resources"),
    ],
)
def test_unreadable_input_is_a_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    out = run("evaluate", str(bad), "--now", "2026-01-15")
    assert out.returncode == 1
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_one_bad_file_among_good_ones_is_reported_and_the_rest_evaluated(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes((EXAMPLES / "02-inadequate-dose-venlafaxine-75.json").read_bytes())
    (tmp_path / "b.json").write_bytes(b"{broken")
    out = run("evaluate", str(tmp_path), "--now", "2026-01-15", "--format", "json")
    assert out.returncode == 0
    assert "b.json" in out.stderr
    assert json.loads(out.stdout.splitlines()[0])["trd"]["status"] == "does_not_meet"


def test_bad_date_and_missing_file() -> None:
    assert run("evaluate", str(EXAMPLES), "--now", "15/01/2026").returncode == 2
    out = run("evaluate", "/nonexistent/file.json", "--now", "2026-01-15")
    assert out.returncode == 1 and "cannot read" in out.stderr


def test_ndjson_input(tmp_path: Path) -> None:
    bundle = json.loads((EXAMPLES / "01-trd-two-adequate-failures.json").read_text())
    nd = tmp_path / "patient.ndjson"
    nd.write_text("\n".join(json.dumps(e["resource"]) for e in bundle["entry"]) + "\n")
    out = run("evaluate", str(nd), "--now", "2026-01-15", "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["trd"]["status"] == "meets"
