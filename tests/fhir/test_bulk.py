"""Bulk export reading: patient attribution, bad lines, partitioning by patient with gzip input."""

from __future__ import annotations

import gzip
from pathlib import Path

from cds.fhir.bulk import (
    FileStats,
    attribute,
    bucket_of,
    classify,
    export_files,
    group_lines,
    partition_file,
    patient_of,
    read_bucket,
)


def test_patient_of() -> None:
    assert patient_of({"resourceType": "Patient", "id": "p1"}) == "p1"
    assert patient_of({"resourceType": "Observation", "subject": {"reference": "Patient/p1"}}) == "p1"
    assert patient_of({"resourceType": "Coverage", "beneficiary": {"reference": "Patient/p1"}}) == "p1"
    ref = {"reference": "https://x.org/fhir/Patient/p2/_history/3"}
    assert patient_of({"resourceType": "AllergyIntolerance", "patient": ref}) == "p2"
    assert patient_of({"resourceType": "Observation", "subject": {"reference": "Group/g"}}) is None
    assert patient_of({"resourceType": "Practitioner", "id": "d"}) is None


def test_classify() -> None:
    assert classify(b'{"resourceType":"Patient","id":"p"}') == ("p", None, True)
    assert classify(b'{"subject":{"reference":"Patient/p"}}') == ("p", None, False)  # kept: the reader reports it
    assert classify(b'{"resourceType":"Obs') == (None, "not_json", False)
    assert classify(b"\xff\xfe") == (None, "not_json", False)
    assert classify(b"[1, 2]") == (None, "not_object", False)
    assert classify(b'{"resourceType":"Practitioner"}') == (None, "no_patient", False)


def test_partition_groups_by_patient(tmp_path: Path) -> None:
    export, buckets = tmp_path / "export", tmp_path / "buckets"
    export.mkdir()
    lines = [b'{"resourceType":"Patient","id":"p%d"}' % i for i in range(20)]
    (export / "Patient.ndjson").write_bytes(b"\n".join(lines) + b"\n\n")
    obs = [b'{"resourceType":"Observation","subject":{"reference":"Patient/p%d"}}' % (i % 20) for i in range(60)]
    with gzip.open(export / "Observation.ndjson.gz", "wb") as fh:
        fh.write(b"\r\n".join([*obs, b"{broken", b"[]"]))
    files = export_files(export)
    assert [p.name for p in files] == ["Observation.ndjson.gz", "Patient.ndjson"]
    stats = [partition_file(p, buckets, 4) for p in files]
    assert stats[0].resources == 60 and stats[0].bad == {"not_json": 1, "not_object": 1}
    assert stats[1].patients == 20 and stats[1].lines == 20
    seen: dict[str, int] = {}
    for b in range(4):
        for pid, group in read_bucket(buckets / f"b{b:05d}"):
            assert bucket_of(pid, 4) == b and pid not in seen
            seen[pid] = len(group)
    assert seen == {f"p{i}": 4 for i in range(20)}


def test_same_type_plain_and_gzip_files_keep_their_own_bucket_files(tmp_path: Path) -> None:
    """Observation.ndjson and Observation.ndjson.gz in one export: neither overwrites the other's lines."""
    export, buckets = tmp_path / "export", tmp_path / "buckets"
    export.mkdir()
    (export / "Observation.ndjson").write_bytes(b'{"resourceType":"Observation","subject":{"reference":"Patient/a"}}\n')
    with gzip.open(export / "Observation.ndjson.gz", "wb") as fh:
        fh.write(b'{"resourceType":"Observation","id":"2","subject":{"reference":"Patient/a"}}\n')
    for p in export_files(export):
        partition_file(p, buckets, 1)
    assert [(pid, len(lines)) for pid, lines in read_bucket(buckets / "b00000")] == [("a", 2)]


def test_attribute_counts_every_line_and_group_lines_orders_patients() -> None:
    stats = FileStats("Observation.ndjson")
    lines = [b'{"subject":{"reference":"Patient/b"}}', b"   ", b"{no", b'{"subject":{"reference":"Patient/a"}}']
    lines += [b'{"subject":{"reference":"Patient/b/_history/2"}}', b'{"subject":{"reference":"Patient/_history"}}']
    pairs = list(attribute(lines, stats))
    assert [pid for pid, _ in pairs] == ["b", "a", "b"]
    assert (stats.lines, stats.resources, stats.bad) == (5, 3, {"not_json": 1, "no_patient": 1})
    assert [(pid, len(group)) for pid, group in group_lines(pairs)] == [("a", 1), ("b", 2)]
