"""Bulk export reading: patient attribution, bad lines, partitioning by patient with gzip input."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from cds.fhir.bulk import (
    PRESENT,
    FileStats,
    add_shared,
    attribute,
    bucket_of,
    classify,
    classify_by_full_parse,
    export_files,
    group_lines,
    iter_lines,
    load_shared,
    partition_file,
    patient_of,
    read_bucket,
)
from cds.fhir.reader import BOM, read_resources


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
    assert classify(b'{"resourceType":"Medication","id":"m1"}') == ("Medication/m1", "shared", False)
    assert classify(b'{"resourceType":"Medication"}') == (None, "no_patient", False)  # no id: nothing can point at it
    enc = b'{"resourceType":"Encounter","id":"e","subject":{"reference":"Patient/p"}}'
    assert classify(enc) == ("p", "unread", False)  # no reader reads Encounters: counted, not carried
    assert classify(b'{"resourceType":"Encounter","id":"e"}') == (None, "no_patient", False)
    assert classify(b'{"resourceType":7,"subject":{"reference":"Patient/p"}}') == ("p", None, False)  # reported
    assert classify(b'{"resourceType":"","subject":{"reference":"Patient/p"}}') == ("p", None, False)


EDGE_LINES = [
    b'{"resourceType":"Patient","id":"p","resourceType":"Observation"}',  # duplicate member: the last one counts
    b'{"subject":{"reference":"Patient/a"},"subject":{"reference":"Patient/b"}}',
    b'{"subject":"Patient/a"}',  # not a Reference
    b'{"subject":{"reference":7}}',
    b'{"resourceType":"Patient","id":7}',
    b'{"resourceType":"Patient","id":"a\\tb"}',
    b'{"subject":{"reference":"Patient/p"}} x',  # trailing text
    b'{"subject":{"reference":"Patient/p"},}',
    b'{"a":NaN,"subject":{"reference":"Patient/p"}}',
    b'{"a":"\\ud800","subject":{"reference":"Patient/p"}}',  # lone surrogate
    b'{"a":"\\u00e9","subject":{"reference":"Patient/p"}}',
    b'{"a":"\xc3\xa9","subject":{"reference":"Patient/p"}}',  # valid non-ASCII: the fast path
    b'{"a":"\xed\xa0\x80","subject":{"reference":"Patient/p"}}',  # encoded surrogate: not UTF-8
    b'{"a":' + b"[" * 2000 + b"]" * 2000 + b',"subject":{"reference":"Patient/p"}}',  # deeper than either decoder goes
    b'{"a":1e308,"subject":{"reference":"Patient/p"}}',
    b"null",
    b'"Patient/p"',
    b"{}",
    b'{"resourceType":"Medication","id":"m1","code":{"text":"x"}}',
    b'{"resourceType":"Medication","id":"m\\tb"}',
    b'{"resourceType":"Medication","id":""}',
    b'{"resourceType":["Medication"],"id":"m1"}',
    b'{"resourceType":"Claim","patient":{"reference":"Patient/p"}}',
    b'{"resourceType":"","subject":{"reference":"Patient/p"}}',
]


def test_fast_classify_agrees_with_the_full_parse_on_edge_cases() -> None:
    for line in EDGE_LINES:
        assert classify(line) == classify_by_full_parse(line), line[:60]


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_member = st.sampled_from(["resourceType", "id", "subject", "patient", "beneficiary", "code", "reference"])
_value = (
    _json
    | st.sampled_from(["Patient", "Observation", "Medication", "p1"])
    | st.builds(
        lambda rid: {"reference": rid}, st.sampled_from(["Patient/p1", "Patient/p2/_history/1", "Group/g", "Patient/"])
    )
)


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(_member | st.text(max_size=4), _value, max_size=5), cut=st.integers(0, 3))
def test_fast_classify_agrees_with_the_full_parse(doc: dict[str, Any], cut: int) -> None:
    line = orjson.dumps(doc)
    assert classify(line) == classify_by_full_parse(line)
    broken = line[: len(line) - cut]  # truncated lines are not JSON, unless nothing was cut
    assert classify(broken) == classify_by_full_parse(broken)


def test_a_number_too_large_in_a_member_attribution_does_not_read_stays_with_its_patient() -> None:
    """The one documented difference: the fast path does not convert numbers it skips. The line goes to its
    patient, whose reader reports it (tests/screen: the patient is still evaluated)."""
    line = b'{"resourceType":"Observation","valueQuantity":{"value":1e999},"subject":{"reference":"Patient/p"}}'
    assert classify_by_full_parse(line) == (None, "not_json", False)
    assert classify(line) == ("p", None, False)


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


def test_iter_lines_drops_a_byte_order_mark_at_the_start_only(tmp_path: Path) -> None:
    lines = [b'{"resourceType":"Patient","id":"p"}', b'{"resourceType":"Patient","id":"q"}']
    (tmp_path / "a.ndjson").write_bytes(BOM + lines[0] + b"\r\n" + BOM + lines[1] + b"\n")
    with gzip.open(tmp_path / "b.ndjson.gz", "wb") as fh:
        fh.write(BOM + b"\n".join(lines))
    assert list(iter_lines(tmp_path / "a.ndjson")) == [lines[0], BOM + lines[1]]  # inside a file it is an error
    assert list(iter_lines(tmp_path / "b.ndjson.gz")) == lines
    (tmp_path / "c.ndjson").write_bytes(BOM)
    assert list(iter_lines(tmp_path / "c.ndjson")) == []


def test_a_cut_short_or_corrupt_gzip_file_keeps_its_lines_and_says_why(tmp_path: Path) -> None:
    lines = [b'{"resourceType":"Patient","id":"p%d"}' % i for i in range(20_000)]
    data = gzip.compress(b"\n".join(lines) + b"\n")
    (tmp_path / "cut.ndjson.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.ndjson.gz").write_bytes(b"not gzip at all")
    stats = FileStats("cut.ndjson.gz")
    got = list(iter_lines(tmp_path / "cut.ndjson.gz", stats))
    assert 0 < len(got) < len(lines) and got == lines[: len(got)]
    assert stats.error is not None and stats.error.startswith("the compressed file is cut short")
    assert FileStats.from_json(stats.to_json()) == stats
    junk = FileStats("junk.ndjson.gz")
    assert list(iter_lines(tmp_path / "junk.ndjson.gz", junk)) == []
    assert junk.error is not None and junk.error.startswith("not a valid gzip file")
    (tmp_path / "garbled.ndjson.gz").write_bytes(data[:10] + b"\xff" * 50 + data[60:])  # a gzip header, then junk
    garbled = FileStats("garbled.ndjson.gz")
    assert list(iter_lines(tmp_path / "garbled.ndjson.gz", garbled)) == []
    assert garbled.error is not None and garbled.error.startswith("the compressed data is corrupt")


def test_unread_types_are_counted_not_partitioned() -> None:
    """Only their patient's presence is carried: one empty line where the patient's run has nothing else."""
    enc = b'{"resourceType":"Encounter","subject":{"reference":"Patient/%s"}}'
    cond = b'{"resourceType":"Condition","subject":{"reference":"Patient/a"}}'
    lines = [enc % b"a", enc % b"a", b'{"resourceType":"Encounter"}', cond, enc % b"a", enc % b"b", enc % b"b"]
    stats = FileStats("Encounter.ndjson")
    assert list(attribute(lines, stats)) == [("a", PRESENT), ("a", cond), ("b", PRESENT)]
    assert (stats.lines, stats.resources, stats.unread, stats.bad) == (7, 6, 5, {"no_patient": 1})
    assert FileStats.from_json(stats.to_json()) == stats


def test_shared_resources_are_counted_not_partitioned() -> None:
    stats = FileStats("Medication.ndjson")
    lines = [b'{"resourceType":"Medication","id":"m1"}', b'{"resourceType":"Medication","id":"m2"}', b"{x"]
    assert list(attribute(lines, stats)) == []
    assert (stats.lines, stats.resources, stats.shared, stats.bad) == (3, 0, 2, {"not_json": 1})
    assert FileStats.from_json(stats.to_json()) == stats


def test_load_shared_reads_the_files_of_shared_resources(tmp_path: Path) -> None:
    (tmp_path / "Medication.ndjson").write_bytes(
        b"{broken\n"
        b'{"resourceType":"Medication","id":"m1","code":{"text":"first"}}\n'
        b'{"resourceType":"Medication","id":"m2"}\n'
        b'{"resourceType":"Medication","id":"m1","code":{"text":"second"}}\n'
    )
    with gzip.open(tmp_path / "Medication_2.ndjson.gz", "wb") as fh:
        fh.write(b'{"resourceType":"Medication","id":"m3"}\n')
    # a file of patients' resources is left at its first usable line (a Bulk Data file holds one type)
    (tmp_path / "Observation.ndjson").write_bytes(
        b'{"resourceType":"Observation","subject":{"reference":"Patient/p"}}\n{"resourceType":"Medication","id":"m9"}\n'
    )
    # so is a file of resources without a patient, e.g. Practitioners
    (tmp_path / "Practitioner.ndjson").write_bytes(
        b'{"resourceType":"Practitioner","id":"d1"}\n{"resourceType":"Medication","id":"m8"}\n'
    )
    # a Medication without an id cannot be referenced, but it does not end its file
    (tmp_path / "Medication_3.ndjson").write_bytes(
        b'{"resourceType":"Medication"}\n{"resourceType":"Medication","id":"m4"}\n'
    )
    shared = load_shared(export_files(tmp_path))
    assert sorted(shared) == ["Medication/m1", "Medication/m2", "Medication/m3", "Medication/m4"]
    assert b"first" in shared["Medication/m1"]  # the first line of an id wins


def test_add_shared_brings_the_referenced_medications() -> None:
    shared = {f"Medication/m{i}": b'{"resourceType":"Medication","id":"m%d"}' % i for i in range(1, 5)}

    def request(ref: str) -> dict[str, Any]:
        return {"resourceType": "MedicationRequest", "medicationReference": {"reference": ref}}

    raw = read_resources(
        [
            request("Medication/m1"),
            request("https://ehr.example/fhir/Medication/m2/_history/3"),
            request("#m3"),  # contained: not a shared resource
            request("Medication/m4"),
            {"resourceType": "Medication", "id": "m4"},  # the patient's own copy wins
            request("Medication/m9"),  # unknown: stays unresolved for the record reader to report
            request("Medication/m1"),
        ]
    )
    add_shared(raw, shared)
    assert [r["id"] for r in raw.resources[7:]] == ["m1", "m2"]
