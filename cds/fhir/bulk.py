"""Read a FHIR Bulk Data export (``$export``: one NDJSON file per resource type, optionally gzip) and group its
resources by patient with bounded memory.

Grouping is an on-disk hash partition: every line is checked to be JSON, attributed to a patient (the Patient's
own id, else the ``subject``/``patient`` reference) and appended, prefixed by that id, to one of ``buckets`` files
chosen by a stable hash of the id. A bucket then holds every line of its patients and nothing else, so a
consumer loads one bucket (a few tens of MB at most, see ``choose_buckets``) and groups it in memory. Memory
is bounded by the bucket size, never by the export size; the input is read strictly sequentially.

Lines that cannot be attributed are counted by file and reason, never fatal: ``not_json`` (not JSON or not
UTF-8), ``not_object`` (JSON that is not an object), ``no_patient`` (a resource with no patient reference,
e.g. a Practitioner). A resource without ``resourceType`` but with a patient reference stays with its patient:
the record reader reports it there as a data-quality issue.

Shared resources are the exception: a ``Medication`` belongs to no patient, but patients' medication
resources point at it (``medicationReference``). They are counted as ``shared``, kept out of the buckets and
loaded once per run (``load_shared``, from the files that hold them: a Bulk Data file holds one resource type),
and each patient gets the ones its resources reference (``add_shared``).

A patient's resources of a type the record reader never reads (``cds.fhir.record.READ_TYPES``: an export
without a ``_type`` filter holds Encounters, Claims, ExplanationOfBenefits, DocumentReferences…, often most of
its bytes) are counted as ``unread`` and left out of the buckets: the evaluation would parse them only to skip
them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec
import orjson

from cds.fhir.index import reference_key
from cds.fhir.ndjson import FileStats, decode_head, iter_lines, open_ndjson
from cds.fhir.partition import (
    BAD_REASONS,
    PRESENT,
    SHARED,
    SHARED_TYPES,
    UNREAD,
    attribute,
    bucket_of,
    bucket_path,
    classify,
    classify_by_full_parse,
    partition_file,
    patient_of,
)
from cds.fhir.reader import RawInput

__all__ = [  # the bulk-export API; attribution and partitioning live in cds.fhir.partition (compiled)
    "BAD_REASONS",
    "PRESENT",
    "SHARED",
    "SHARED_TYPES",
    "UNREAD",
    "FileStats",
    "add_shared",
    "attribute",
    "bucket_of",
    "bucket_path",
    "choose_buckets",
    "classify",
    "classify_by_full_parse",
    "estimated_bytes",
    "export_files",
    "group_lines",
    "iter_lines",
    "load_shared",
    "open_ndjson",
    "partition_file",
    "patient_of",
    "read_bucket",
]

NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")
TARGET_BUCKET_BYTES = 32 * 1024 * 1024
GZIP_EXPANSION = 8  # estimate of uncompressed / compressed size for NDJSON FHIR


def export_files(export_dir: Path) -> list[Path]:
    """The NDJSON files of an export directory, by name (the order every reader uses)."""
    files = [p for p in export_dir.iterdir() if p.is_file() and p.name.endswith(NDJSON_SUFFIXES)]
    return sorted(files, key=lambda p: p.name)


def load_shared(files: Iterable[Path]) -> dict[str, bytes]:
    """The shared resources of an export, "Medication/<id>" -> line, read from the files of shared types (a Bulk
    Data file holds resources of one type: any other file is left at its first resource). The first line of an
    id wins. Every worker holds the result: a formulary's size, not the export's."""
    shared: dict[str, bytes] = {}
    for path in files:
        for line in iter_lines(path, FileStats(path.name)):  # a broken file is reported by its partitioning
            key, reason, _ = classify(line)
            if reason == SHARED and key is not None:
                shared.setdefault(key, line)
            elif reason not in ("not_json", "not_object") and _resource_type(line) not in SHARED_TYPES:
                break  # a file of another type: patients' resources, or Practitioners and the like
    return shared


def _resource_type(line: bytes) -> Any:
    try:
        return decode_head(line).resourceType
    except (msgspec.DecodeError, RecursionError):
        return None


def add_shared(raw: RawInput, shared: Mapping[str, bytes]) -> None:
    """Add to one patient's resources the shared ones they reference (``medicationReference``) and do not hold
    themselves, in reference order; what cannot be found stays unresolved for the record reader to report."""
    if not shared:
        return
    held = {f"{r['resourceType']}/{r['id']}" for r in raw.resources if isinstance(r.get("id"), str)}
    for res in list(raw.resources):
        ref = res.get("medicationReference")
        target = ref.get("reference") if isinstance(ref, dict) else None
        key = reference_key(target) if isinstance(target, str) and not target.startswith("#") else None
        if key is None or key in held or key not in shared:
            continue
        held.add(key)
        resource = orjson.loads(shared[key])
        if isinstance(resource, dict):
            raw.resources.append(resource)


def estimated_bytes(files: Iterable[Path]) -> int:
    return sum(p.stat().st_size * (GZIP_EXPANSION if p.name.endswith(".gz") else 1) for p in files)


def choose_buckets(files: Iterable[Path], minimum: int = 16, maximum: int = 1024) -> int:
    """About TARGET_BUCKET_BYTES of NDJSON per bucket; at least ``minimum`` for load balance."""
    wanted = math.ceil(estimated_bytes(files) / TARGET_BUCKET_BYTES)
    return max(minimum, min(maximum, wanted))


def read_bucket(bucket: Path) -> Iterator[tuple[str, list[bytes]]]:
    """The patients of one bucket directory in id order, each with its lines (in no defined order)."""
    groups: dict[bytes, list[bytes]] = {}
    for part in sorted(bucket.glob("*.tsv")):
        with part.open("rb") as fh:
            for row in fh:
                key, _, line = row[:-1].partition(b"\t")
                group = groups.get(key)
                if group is None:
                    groups[key] = [line]
                else:
                    group.append(line)
    for key in sorted(groups):  # UTF-8 byte order is code point order: the order of the decoded ids
        yield key.decode("utf-8"), groups.pop(key)


def group_lines(pairs: Iterable[tuple[str, bytes]]) -> Iterator[tuple[str, list[bytes]]]:
    """(patient id, line) pairs grouped by patient, in id order (one partition's worth, held in memory)."""
    groups: dict[str, list[bytes]] = {}
    for pid, line in pairs:
        group = groups.get(pid)
        if group is None:
            groups[pid] = [line]
        else:
            group.append(line)
    for pid in sorted(groups):
        yield pid, groups.pop(pid)
