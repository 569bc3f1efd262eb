"""Reading input: Bundles of every type, single resources, NDJSON; broken entries become data issues."""

from __future__ import annotations

import json

import pytest

from cds.errors import InputError
from cds.fhir.reader import BOM, read_input


@pytest.mark.parametrize("btype", ["collection", "searchset", "transaction", "batch"])
def test_bundle_types(btype: str) -> None:
    doc = {
        "resourceType": "Bundle",
        "type": btype,
        "entry": [
            {
                "fullUrl": "urn:uuid:1",
                "resource": {"resourceType": "Patient", "id": "p"},
                "request": {"method": "POST", "url": "Patient"},
            }
        ],
    }
    raw = read_input(json.dumps(doc).encode())
    assert [r["resourceType"] for r in raw.resources] == ["Patient"]
    assert "urn:uuid:1" in raw.full_urls


def test_broken_entries_become_issues_and_the_rest_is_kept() -> None:
    doc = {
        "resourceType": "Bundle",
        "entry": [{"resource": {"resourceType": "Patient", "id": "p"}}, {}, {"resource": {"id": "x"}}, "junk"],
    }
    raw = read_input(json.dumps(doc).encode())
    assert len(raw.resources) == 1
    assert [i.ref for i in raw.issues] == ["entry[1]", "entry[2]", "entry[3]"]


def test_ndjson_with_a_broken_line() -> None:
    data = b'{"resourceType": "Patient", "id": "p"}\nnot json\n{"resourceType": "Observation", "id": "o"}\n'
    raw = read_input(data)
    assert [r["resourceType"] for r in raw.resources] == ["Patient", "Observation"]
    assert [i.ref for i in raw.issues] == ["line[2]"]


def test_a_byte_order_mark_at_the_start_is_dropped() -> None:
    bundle = b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "id": "p"}}]}'
    ndjson = b'{"resourceType": "Patient", "id": "p"}\n{"resourceType": "Observation", "id": "o"}\n'
    assert [r["id"] for r in read_input(BOM + bundle).resources] == ["p"]
    raw = read_input(BOM + ndjson)
    assert [r["id"] for r in raw.resources] == ["p", "o"] and raw.issues == []
    with pytest.raises(InputError):
        read_input(BOM)


@pytest.mark.parametrize("data", [b"", b"   ", b"not json", b'{"a": 1}', b"42", b'{"resourceType": "Bundle"}'])
def test_unreadable_input_raises_input_error(data: bytes) -> None:
    with pytest.raises(InputError):
        read_input(data)


def test_parsed_resources_with_a_nested_bundle_and_junk() -> None:
    from cds.fhir.reader import read_resources

    bundle = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation", "id": "o"}}]}
    raw = read_resources([{"resourceType": "Patient", "id": "p"}, bundle, 7])
    assert [r["resourceType"] for r in raw.resources] == ["Patient", "Observation"]
    assert [i.ref for i in raw.issues] == ["item[2]"]
