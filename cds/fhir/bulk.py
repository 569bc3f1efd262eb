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

import gzip
import itertools
import math
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import msgspec
import orjson

from cds.fhir.index import reference_key
from cds.fhir.reader import BOM, RawInput
from cds.fhir.record import READ_TYPES

NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")
BAD_REASONS = ("not_json", "not_object", "no_patient")
SHARED = "shared"  # the reason of a line that belongs to no patient but that patients' resources reference
UNREAD = "unread"  # the reason of a patient's line of a type no reader reads: counted, not carried
PRESENT = b""  # what stands for such lines in the buckets: the patient exists (an empty line is never a resource)
SHARED_TYPES = frozenset({"Medication"})
TARGET_BUCKET_BYTES = 32 * 1024 * 1024
GZIP_EXPANSION = 8  # estimate of uncompressed / compressed size for NDJSON FHIR
_WRITE_BUFFER = 256 * 1024


def export_files(export_dir: Path) -> list[Path]:
    """The NDJSON files of an export directory, by name (the order every reader uses)."""
    files = [p for p in export_dir.iterdir() if p.is_file() and p.name.endswith(NDJSON_SUFFIXES)]
    return sorted(files, key=lambda p: p.name)


def open_ndjson(path: Path) -> BinaryIO:
    if path.name.endswith(".gz"):
        return cast(BinaryIO, gzip.open(path, "rb"))
    return path.open("rb")


def iter_lines(path: Path, stats: FileStats | None = None) -> Iterator[bytes]:
    """Non-blank lines of one NDJSON(.gz) file, without the line end (nor a byte order mark at the start).

    A compressed file that is cut short (an interrupted download) or corrupt ends where it breaks: the lines before
    are kept and the error is recorded in ``stats.error`` (without ``stats``, a downstream count reports it)."""
    try:
        with open_ndjson(path) as fh:
            first = fh.readline().removeprefix(BOM)
            for line in itertools.chain((first,) if first else (), fh):
                line = line.rstrip(b"\r\n")
                if line[:1] == b"{" or line.strip():  # the common case without a copy
                    yield line
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        if stats is not None:
            stats.error = _UNREADABLE.get(type(exc), "the compressed data is corrupt") + f" ({exc})"


_UNREADABLE = {
    EOFError: "the compressed file is cut short (an interrupted download?)",
    gzip.BadGzipFile: "not a valid gzip file, or its checksum fails",
}


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


class _Head(msgspec.Struct):
    """The members of a resource that attribution reads. Decoding a line into it checks the whole line as JSON
    but makes Python objects only for these: the full parse happens once, in the worker that evaluates the
    patient."""

    resourceType: Any = None
    id: Any = None
    subject: Any = None
    patient: Any = None
    beneficiary: Any = None


_decode_head = msgspec.json.Decoder(_Head).decode


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
            h = _decode_head(line)
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
        return _decode_head(line).resourceType
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


def bucket_of(pid: str, buckets: int) -> int:
    return zlib.crc32(pid.encode("utf-8")) % buckets


def estimated_bytes(files: Iterable[Path]) -> int:
    return sum(p.stat().st_size * (GZIP_EXPANSION if p.name.endswith(".gz") else 1) for p in files)


def choose_buckets(files: Iterable[Path], minimum: int = 16, maximum: int = 1024) -> int:
    """About TARGET_BUCKET_BYTES of NDJSON per bucket; at least ``minimum`` for load balance."""
    wanted = math.ceil(estimated_bytes(files) / TARGET_BUCKET_BYTES)
    return max(minimum, min(maximum, wanted))


@dataclass
class FileStats:
    """What partitioning one input file found."""

    name: str
    lines: int = 0
    resources: int = 0
    patients: int = 0  # Patient resources
    bad: dict[str, int] = field(default_factory=dict)
    shared: int = 0  # shared resources (Medication), joined to the patients that reference them
    unread: int = 0  # patients' resources of types no reader reads (counted in resources), not carried
    error: str | None = None  # why reading stopped before the end of the file (cut-short or corrupt gzip)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "lines": self.lines,
            "resources": self.resources,
            "patients": self.patients,
            "shared": self.shared,
            "unread": self.unread,
            "bad": dict(sorted(self.bad.items())),
            "error": self.error,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> FileStats:
        return cls(
            doc["name"],
            doc["lines"],
            doc["resources"],
            doc["patients"],
            dict(doc["bad"]),
            doc["shared"],
            doc["unread"],
            doc.get("error"),
        )

    def add(self, other: FileStats) -> None:
        """Add the counts of another part of the same file (Spark map tasks)."""
        self.lines += other.lines
        self.resources += other.resources
        self.patients += other.patients
        self.shared += other.shared
        self.unread += other.unread
        self.error = self.error or other.error
        for reason, n in other.bad.items():
            self.bad[reason] = self.bad.get(reason, 0) + n


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
