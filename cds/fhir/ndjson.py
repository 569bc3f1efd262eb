"""NDJSON files of a bulk export: opening (plain or gzip), their lines, what was found in each, and the decoder of
the few members patient attribution reads.

Interpreted on purpose: ``iter_lines`` is a generator that holds its file open, and a compiled generator dropped
early does not close it; ``Head`` is a msgspec Struct, which compiled modules do not define (docs/architecture.md).
The attribution and partitioning that use them are compiled (``cds.fhir.partition``).
"""

from __future__ import annotations

import gzip
import itertools
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

import msgspec
from isal import igzip, isal_zlib

from cds.fhir.reader import BOM


def open_ndjson(path: Path) -> BinaryIO:
    """A gzip file is read with ISA-L's igzip: half the CPU time of the standard library's gzip, which matters
    when a whole export is read once per run (its errors are the standard library's EOFError and BadGzipFile)."""
    if path.name.endswith(".gz"):
        return cast(BinaryIO, igzip.open(path, "rb"))  # type: ignore[no-untyped-call]
    return path.open("rb")


# isal's stubs declare its error as an instance; it is the class igzip raises for a corrupt deflate stream.
_ISAL_ERROR = cast(type[Exception], isal_zlib.error)


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
    except (EOFError, gzip.BadGzipFile, zlib.error, _ISAL_ERROR) as exc:
        if stats is not None:
            stats.error = _UNREADABLE.get(type(exc), "the compressed data is corrupt") + f" ({exc})"


_UNREADABLE = {
    EOFError: "the compressed file is cut short (an interrupted download?)",
    gzip.BadGzipFile: "not a valid gzip file, or its checksum fails",
}


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


class Head(msgspec.Struct):
    """The members of a resource that attribution reads. Decoding a line into it checks the whole line as JSON
    but makes Python objects only for these: the full parse happens once, in the worker that evaluates the
    patient."""

    resourceType: Any = None
    id: Any = None
    subject: Any = None
    patient: Any = None
    beneficiary: Any = None


decode_head = msgspec.json.Decoder(Head).decode
