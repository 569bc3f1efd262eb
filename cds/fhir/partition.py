"""Patient attribution of NDJSON lines and the on-disk hash partition by patient (see ``cds.fhir.bulk``).

Compiled (setup.py): every line of an export passes through ``attribute``, so this is the per-line cost of a
screening run before any patient is evaluated.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import msgspec
import orjson

from cds.fhir.ndjson import FileStats, decode_head, iter_lines
from cds.fhir.record import READ_TYPES

BAD_REASONS = ("not_json", "not_object", "no_patient")
SHARED = "shared"  # the reason of a line that belongs to no patient but that patients' resources reference
UNREAD = "unread"  # the reason of a patient's line of a type no reader reads: counted, not carried
PRESENT = b""  # what stands for such lines in the buckets: the patient exists (an empty line is never a resource)
SHARED_TYPES = frozenset({"Medication"})
_WRITE_BUFFER = 256 * 1024


def _ref_id(value: Any) -> str | None:
    """The patient id in a Reference to a Patient (relative, absolute or versioned), else None."""
    if not isinstance(value, dict):
        return None
    ref = value.get("reference")
    if not isinstance(ref, str) or not ref:
        return None
    if ref.startswith("Patient/"):  # the common relative form, without the split below (same answer)
        rid = ref[8:]
        if rid and "/" not in rid and rid != "_history":
            return rid
    parts = ref.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
        return parts[-1]
    return None


def _owner(rtype: Any, rid: Any, subject: Any, patient: Any, beneficiary: Any) -> str | None:
    if rtype == "Patient":
        return rid if isinstance(rid, str) and rid else None
    for ref in (subject, patient, beneficiary):
        pid = _ref_id(ref)
        if pid is not None:
            return pid
    return None


def patient_of(resource: dict[str, Any]) -> str | None:
    """The id of the patient a resource belongs to: a Patient's own id, else its subject or patient."""
    get = resource.get
    return _owner(get("resourceType"), get("id"), get("subject"), get("patient"), get("beneficiary"))


def _clean(key: str | None) -> bool:
    return key is not None and "\t" not in key and "\n" not in key


def _verdict(pid: str | None, rtype: Any, rid: Any) -> tuple[str | None, str | None, bool]:
    if _clean(pid):
        if isinstance(rtype, str) and rtype and rtype not in READ_TYPES:
            return pid, UNREAD, False  # (a resource without a usable type goes on: its reader reports it)
        return pid, None, rtype == "Patient"
    if isinstance(rtype, str) and rtype in SHARED_TYPES and isinstance(rid, str) and rid:
        key = f"{rtype}/{rid}"
        if _clean(key):
            return key, SHARED, False
    return None, "no_patient", False


def _utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def classify(line: bytes) -> tuple[str | None, str | None, bool]:
    """(patient id, None, is a Patient resource) for a line that belongs to a patient; (patient id, UNREAD,
    False) for one of a type no reader reads; ("Medication/<id>", SHARED, False) for a shared resource; else
    (None, reason, False) with a BAD_REASONS value.

    The fast path accepts what the full parse (orjson) accepts, with one exception: a number too large for a
    double (``1e999``) in a member attribution does not read. Such a line goes to its patient, whose record
    reader reports it as a line that is not valid JSON (``cds.fhir.reader.read_lines``); one without a patient
    is counted as ``no_patient`` instead of ``not_json``. A line that is not valid UTF-8 takes the full parse:
    the fast decoder does not check the UTF-8 of the strings it skips."""
    if line.isascii() or _utf8(line):
        try:
            h = decode_head(line)
        except (msgspec.DecodeError, RecursionError):
            pass  # not JSON, not an object, or nested too deep: the full parse below gives the reason
        else:
            pid = _owner(h.resourceType, h.id, h.subject, h.patient, h.beneficiary)
            return _verdict(pid, h.resourceType, h.id)
    return classify_by_full_parse(line)


def classify_by_full_parse(line: bytes) -> tuple[str | None, str | None, bool]:
    """classify by parsing the whole line with orjson: the fallback of the fast path, and its reference."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None, "not_json", False
    if not isinstance(doc, dict):
        return None, "not_object", False
    return _verdict(patient_of(doc), doc.get("resourceType"), doc.get("id"))


def attribute(lines: Iterable[bytes], stats: FileStats) -> Iterator[tuple[str, bytes]]:
    """(patient id, line) for every line of one file that belongs to a patient and is of a type the reader
    reads, and (patient id, PRESENT) where a patient's unread lines would otherwise leave no trace (at most one
    per run of that patient's lines: presence, not a count). Every non-blank line is counted in ``stats``
    (lines, patients' resources and of those the unread ones, Patient resources, shared resources, bad lines by
    reason); blank lines are skipped. The one place lines are classified, for the local partitioning and for
    Spark alike; shared resources are only counted here (``load_shared`` reads them)."""
    bad = stats.bad
    last: str | None = None  # the patient of the last pair yielded
    for line in lines:
        if not (line[:1] == b"{" or line.strip()):
            continue
        stats.lines += 1
        pid, reason, is_patient = classify(line)
        if reason is None and pid is not None:
            stats.resources += 1
            stats.patients += is_patient
            last = pid
            yield pid, line
        elif reason == UNREAD:
            stats.resources += 1
            stats.unread += 1
            if pid is not None and pid != last:
                last = pid
                yield pid, PRESENT  # so that a patient with only unread resources still gets a row
        elif reason == SHARED:
            stats.shared += 1
        else:
            reason = reason or "no_patient"
            bad[reason] = bad.get(reason, 0) + 1


def bucket_of(pid: str, buckets: int) -> int:
    return zlib.crc32(pid.encode("utf-8")) % buckets


def bucket_path(bucket_dir: Path, bucket: int, source: str) -> Path:
    """Lines of one input file in one bucket: ``<bucket_dir>/b00042/<file name>.tsv``."""
    return bucket_dir / f"b{bucket:05d}" / f"{source}.tsv"


def partition_file(path: Path, bucket_dir: Path, buckets: int) -> FileStats:
    """Append every attributable line of ``path`` as ``<patient id>\\t<line>`` to its bucket's file."""
    stats = FileStats(path.name)
    source = path.name  # the whole name: Observation.ndjson and Observation.ndjson.gz must not share a file
    writers: dict[int, IO[bytes]] = {}
    last_pid, key, fh = None, b"", None  # a patient's lines are usually consecutive: one lookup per run of them
    try:
        for pid, line in attribute(iter_lines(path, stats), stats):
            if pid != last_pid or fh is None:
                last_pid, key = pid, pid.encode("utf-8")
                b = bucket_of(pid, buckets)
                fh = writers.get(b)
                if fh is None:
                    target = bucket_path(bucket_dir, b, source)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    fh = writers[b] = target.open("wb", buffering=_WRITE_BUFFER)
            fh.write(b"%b\t%b\n" % (key, line))
    finally:
        for fh in writers.values():
            fh.close()
    return stats
