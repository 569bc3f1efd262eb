"""Bulk export reading: patient attribution, bad lines, partitioning by patient with gzip input."""

from __future__ import annotations

import gzip
from pathlib import Path

from cds.fhir.bulk import bucket_of, classify, export_files, partition_file, patient_of, read_bucket


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
