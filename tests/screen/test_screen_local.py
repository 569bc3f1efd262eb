"""Local screening: one row per patient, 1 and 2 processes agree, gzip input, malformed lines counted."""

from __future__ import annotations

import io
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import orjson
import pyarrow.parquet as pq
from rich.console import Console
from screen_helpers import N_PATIENTS, NOW, read_bytes

from cds.screen import COLUMNS, screen_local
from cds.screen.summary import NOT_COMPUTED, STAGING_LABELS, render_summary
from cds.synthetic import write_bulk_export


def test_one_row_per_patient_sorted(reference_run: Path) -> None:
    table = pq.read_table(reference_run / "screening.parquet")
    assert table.column_names == list(COLUMNS)
    ids = table.column("patient_id").to_pylist()
    assert len(ids) == N_PATIENTS == len(set(ids))
    assert ids == sorted(ids)
    rows = table.to_pylist()
    assert all(r["evaluated"] for r in rows)
    assert {r["trd_status"] for r in rows} <= {"meets", "does_not_meet", "insufficient_data"}
    assert all(r["knowledge_version"] and r["now"] == NOW.isoformat() for r in rows)
    assert not (reference_run / "_work").exists()  # a finished run leaves no work files


def test_csv_matches_parquet(reference_run: Path) -> None:
    lines = (reference_run / "screening.csv").read_text().splitlines()
    assert lines[0].split(",") == list(COLUMNS)
    assert len(lines) == N_PATIENTS + 1


def test_two_processes_identical(export_dir: Path, reference_run: Path, tmp_path: Path) -> None:
    result = screen_local(export_dir, tmp_path, NOW, processes=2, buckets=7, progress=False)
    assert result.complete and result.patients == N_PATIENTS
    assert read_bytes(tmp_path) == read_bytes(reference_run)


def test_gzip_input_identical(export_gz: Path, reference_run: Path, tmp_path: Path) -> None:
    assert all(p.name.endswith(".ndjson.gz") for p in export_gz.iterdir())
    screen_local(export_gz, tmp_path, NOW, processes=2, progress=False)
    assert read_bytes(tmp_path) == read_bytes(reference_run)


def test_malformed_lines_counted_not_fatal(reference_run: Path) -> None:
    report = orjson.loads((reference_run / "summary.json").read_bytes())
    bad = report["input"]["bad_lines"]
    assert bad.get("not_json", 0) > 0 and sum(bad.values()) > 3
    assert report["patients"] == report["evaluated"] == N_PATIENTS
    assert sum(report["trd_status"].values()) == N_PATIENTS
    per_file = {f["name"]: f for f in report["input"]["files"]}
    assert per_file["Patient.ndjson"]["patients"] == N_PATIENTS


def test_summary_counts_each_staging_label_as_the_table_holds_it(reference_run: Path) -> None:
    report = orjson.loads((reference_run / "summary.json").read_bytes())
    rows = pq.read_table(reference_run / "screening.parquet").to_pylist()
    for column, name in STAGING_LABELS.items():
        expected = Counter(NOT_COMPUTED if r[column] is None else r[column] for r in rows)
        assert report["staging"][name] == dict(sorted(expected.items())), name
    assert len(report["staging"]["european_level"]) > 1  # some patients are staged, some not


def test_patient_without_usable_resources_gets_an_error_row(tmp_path: Path) -> None:
    export, out = tmp_path / "export", tmp_path / "out"
    export.mkdir()
    (export / "Observation.ndjson").write_bytes(
        b'{"subject": {"reference": "Patient/p1"}, "id": "o1"}\n'  # no resourceType: nothing usable
        b'{"resourceType": "Patient", "id": "p2"}\n'
    )
    result = screen_local(export, out, NOW, processes=1, progress=False)
    rows = {r["patient_id"]: r for r in pq.read_table(out / "screening.parquet").to_pylist()}
    assert result.complete and set(rows) == {"p1", "p2"}
    assert rows["p1"]["evaluated"] is False and "InputError" in rows["p1"]["error"]
    assert rows["p2"]["evaluated"] is True


def test_a_line_the_full_parse_rejects_is_a_data_quality_issue_of_its_patient(tmp_path: Path) -> None:
    """A line attributed by the partitioning's fast check but rejected by the full parse (a number too large for a
    double) is reported in its patient's data quality; the rest of the patient is evaluated."""
    export, out = tmp_path / "export", tmp_path / "out"
    export.mkdir()
    (export / "Observation.ndjson").write_bytes(
        b'{"resourceType": "Patient", "id": "p1"}\n'
        b'{"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p1"}, "valueInteger": 1e999}\n'
    )
    result = screen_local(export, out, NOW, processes=1, progress=False)
    (row,) = pq.read_table(out / "screening.parquet").to_pylist()
    assert result.complete and row["evaluated"] is True and row["resources"] == 1
    assert dict(row["data_quality"]) == {"invalid_resource": 1}


def test_shared_medications_are_joined_to_the_patients_that_reference_them(tmp_path: Path) -> None:
    """The same patients with every drug named inline, and with every drug a medicationReference to a Medication
    in Medication.ndjson: the same rows (only the count of resources read differs, by the joined Medications)."""
    rows = {}
    for rate in (0.0, 1.0):
        export, out = tmp_path / f"export-{rate}", tmp_path / f"out-{rate}"
        write_bulk_export(export, 12, seed=5, shared_medication_rate=rate)
        result = screen_local(export, out, NOW, processes=1, progress=False)
        assert result.complete and result.report is not None
        assert (result.report["input"]["shared_resources"] > 0) == (rate > 0)
        rows[rate] = pq.read_table(out / "screening.parquet").to_pylist()
    assert any(r["trials"] for r in rows[1.0])
    for inline, joined in zip(rows[0.0], rows[1.0], strict=True):
        assert inline["resources"] < joined["resources"]
        assert {k: v for k, v in inline.items() if k != "resources"} == {
            k: v for k, v in joined.items() if k != "resources"
        }


def test_an_export_without_its_medications_reads_undetermined_not_negative(tmp_path: Path) -> None:
    """Every drug named by reference, and Medication.ndjson left out of the export: no patient the complete
    export shows as meeting the TRD definition reads "does not meet", and the summary says why."""
    export = tmp_path / "export"
    write_bulk_export(export, 12, seed=5, shared_medication_rate=1.0)
    complete = screen_local(export, tmp_path / "complete", NOW, processes=1, progress=False)
    assert complete.report is not None and complete.report["warnings"] == []
    (export / "Medication.ndjson").unlink()
    partial = screen_local(export, tmp_path / "partial", NOW, processes=1, progress=False)
    assert partial.report is not None
    before = {r["patient_id"]: r for r in pq.read_table(tmp_path / "complete" / "screening.parquet").to_pylist()}
    after = {r["patient_id"]: r for r in pq.read_table(tmp_path / "partial" / "screening.parquet").to_pylist()}
    met = [p for p, r in before.items() if r["trd_status"] == "meets"]
    assert met and all(after[p]["trd_status"] == "insufficient_data" for p in met)
    assert all("trd-unidentified-medications" in after[p]["finding_codes"] for p in met)
    warnings = " ".join(partial.report["warnings"])
    assert "Medication.ndjson" in warnings and "trd-unidentified-medications" in warnings
    printed = io.StringIO()
    render_summary(partial.report, Console(file=printed, width=200))
    assert printed.getvalue().count("Warning:") == len(partial.report["warnings"]) == 2


def test_resources_of_types_no_rule_reads_are_counted_and_change_nothing(tmp_path: Path) -> None:
    """The same patients with and without an Encounter.ndjson (a type no reader reads): byte-identical tables;
    the summary counts the Encounters as unread resources."""
    outs = []
    for encounters in (0, 6):
        export, out = tmp_path / f"export-{encounters}", tmp_path / f"out-{encounters}"
        counts = write_bulk_export(export, 10, seed=6, encounters_per_patient=encounters)
        assert counts.get("Encounter.ndjson", 0) == 10 * encounters
        result = screen_local(export, out, NOW, processes=1, progress=False)
        assert result.complete and result.report is not None
        assert result.report["input"]["unread_resources"] == 10 * encounters
        outs.append(out)
    assert read_bytes(outs[0]) == read_bytes(outs[1])


def test_a_patient_with_only_unread_resources_gets_an_error_row(tmp_path: Path) -> None:
    export, out = tmp_path / "export", tmp_path / "out"
    export.mkdir()
    (export / "Encounter.ndjson").write_bytes(
        b'{"resourceType":"Encounter","id":"e1","subject":{"reference":"Patient/p1"}}\n'
        b'{"resourceType":"Encounter","id":"e2","subject":{"reference":"Patient/p2"}}\n'
    )
    (export / "Patient.ndjson").write_bytes(b'{"resourceType":"Patient","id":"p2"}\n')
    result = screen_local(export, out, NOW, processes=1, progress=False)
    rows = {r["patient_id"]: r for r in pq.read_table(out / "screening.parquet").to_pylist()}
    assert result.complete and set(rows) == {"p1", "p2"}
    assert rows["p1"]["evaluated"] is False and "only resources of types no rule reads" in rows["p1"]["error"]
    assert rows["p2"]["evaluated"] is True and rows["p2"]["resources"] == 1


def test_a_cut_short_gzip_file_is_screened_up_to_the_break_and_reported(export_gz: Path, tmp_path: Path) -> None:
    """An interrupted download: the run completes, every patient gets a row, and the summary names the file."""
    export = tmp_path / "export"
    export.mkdir()
    for f in export_gz.iterdir():
        data = f.read_bytes()
        (export / f.name).write_bytes(data[: len(data) // 2] if f.name == "Observation.ndjson.gz" else data)
    result = screen_local(export, tmp_path / "out", NOW, processes=1, progress=False)
    assert result.complete and result.report is not None and result.patients == N_PATIENTS
    (warning,) = [w for w in result.report["warnings"] if w.startswith("Observation.ndjson.gz:")]
    assert "cut short" in warning and "fetch the file again" in warning
    files = {f["name"]: f for f in result.report["input"]["files"]}
    assert files["Observation.ndjson.gz"]["error"] and files["Condition.ndjson.gz"]["error"] is None


def test_medication_administrations_are_read_from_the_export(tmp_path: Path) -> None:
    """A MedicationAdministration.ndjson is screened like any medication file: ten weeks of venlafaxine 75 mg
    twice a day on a ward is one adequate failed trial, which once a day would not be."""
    export, out = tmp_path / "export", tmp_path / "out"
    export.mkdir()
    venlafaxine = {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "39786"}]}
    given = [
        {
            "resourceType": "MedicationAdministration",
            "id": f"{pid}-{day}-{t}",
            "status": "completed",
            "medicationCodeableConcept": venlafaxine,
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": f"{date(2025, 3, 17) + timedelta(days=day)}T{8 + 12 * t:02d}:00:00Z",
            "dosage": {"dose": {"value": 75, "code": "mg"}},
        }
        for pid, times in (("p1", 2), ("p2", 1))
        for day in range(71)
        for t in range(times)
    ]
    scores = [
        {
            "resourceType": "Observation",
            "id": f"{pid}-{when}",
            "status": "final",
            "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
            "effectiveDateTime": when,
            "valueInteger": score,
        }
        for pid in ("p1", "p2")
        for when, score in (("2025-03-10", 17), ("2025-05-26", 16))
    ]
    patients = [{"resourceType": "Patient", "id": pid} for pid in ("p1", "p2")]
    for name, resources in (("MedicationAdministration", given), ("Observation", scores), ("Patient", patients)):
        (export / f"{name}.ndjson").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in resources))
    result = screen_local(export, out, NOW, processes=1, progress=False)
    assert result.complete and result.report is not None and result.report["input"]["unread_resources"] == 0
    rows = {r["patient_id"]: r for r in pq.read_table(out / "screening.parquet").to_pylist()}
    assert rows["p1"]["failed_adequate_trials"] == 1 and rows["p2"]["failed_adequate_trials"] == 0
    assert rows["p1"]["resources"] == 2 * 71 + 3
