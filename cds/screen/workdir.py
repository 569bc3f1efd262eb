"""The work directory of a local screening run, which makes it resumable.

```
RESULT/_work/manifest.json          written once partitioning finished: inputs fingerprint, buckets, file stats
RESULT/_work/buckets/b00042/*.tsv   the export's lines, partitioned by patient (cds.fhir.bulk)
RESULT/_work/rows/b00042.journal    bucket 42 so far: before each patient a {"_started": id} line, after it the
                                    patient's row; each line flushed
RESULT/_work/rows/b00042.rows       bucket 42 complete: its rows sorted by patient id (atomic rename)
```

A run resumes from whatever is there: no manifest (or one for other inputs, another ``now`` or other
knowledge) means partition again; a ``.rows`` file means the bucket is done; a journal lists the patients of
an unfinished bucket already evaluated, which are skipped (a torn last line from a kill is cut off). A
``_started`` line without its row names the patient whose evaluation was in progress when the process died:
the runner evaluates that one alone first (cds.screen.local), so a patient that crashes the engine every time
gets an error row instead of stopping every resumed run. So no patient is evaluated twice except the one in
progress at the death, and none is lost.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from cds.fhir.bulk import FileStats
from cds.screen.row import Row

MANIFEST_VERSION = 3  # 2: file statistics count shared resources; 3: and unread ones
STARTED = "_started"  # the key of the journal line written (and flushed) before a patient's evaluation
_STARTED_PREFIX = b'{"' + STARTED.encode() + b'"'


def started_line(patient_id: str) -> bytes:
    return orjson.dumps({STARTED: patient_id}) + b"\n"


def _is_row(line: bytes) -> bool:
    return bool(line.strip()) and not line.startswith(_STARTED_PREFIX)


@dataclass
class Manifest:
    fingerprint: list[list[Any]]
    now: str
    knowledge_version: str
    buckets: int
    files: list[FileStats]

    @property
    def patients(self) -> int:
        return sum(f.patients for f in self.files)

    def same_run(self, other: Manifest) -> bool:
        return (self.fingerprint, self.now, self.knowledge_version, self.buckets) == (
            other.fingerprint,
            other.now,
            other.knowledge_version,
            other.buckets,
        )


def fingerprint(files: list[Path]) -> list[list[Any]]:
    return [[p.name, st.st_size, st.st_mtime_ns] for p in files for st in (p.stat(),)]


class WorkDir:
    def __init__(self, out_dir: Path) -> None:
        self.root = out_dir / "_work"
        self.buckets = self.root / "buckets"
        self.rows = self.root / "rows"
        self.manifest_path = self.root / "manifest.json"

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def load_manifest(self) -> Manifest | None:
        try:
            doc = orjson.loads(self.manifest_path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        if doc.get("version") != MANIFEST_VERSION:
            return None
        files = [FileStats.from_json(f) for f in doc["files"]]
        return Manifest(doc["fingerprint"], doc["now"], doc["knowledge_version"], doc["buckets"], files)

    def save_manifest(self, m: Manifest) -> None:
        doc = {
            "version": MANIFEST_VERSION,
            "fingerprint": m.fingerprint,
            "now": m.now,
            "knowledge_version": m.knowledge_version,
            "buckets": m.buckets,
            "files": [f.to_json() for f in m.files],
        }
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        os.replace(tmp, self.manifest_path)

    def bucket_dir(self, b: int) -> Path:
        return self.buckets / f"b{b:05d}"

    def journal(self, b: int) -> Path:
        return self.rows / f"b{b:05d}.journal"

    def done(self, b: int) -> Path:
        return self.rows / f"b{b:05d}.rows"

    def count_rows(self, buckets: int) -> int:
        """Patients already evaluated (complete buckets and journals), for the progress bar."""
        n = 0
        for b in range(buckets):
            path = self.done(b) if self.done(b).exists() else self.journal(b)
            if path.exists():
                with path.open("rb") as fh:
                    n += sum(1 for line in fh if line.endswith(b"\n") and _is_row(line))
        return n


def recover_journal(path: Path) -> tuple[set[str], str | None]:
    """(patient ids with a row in a journal, the patient whose evaluation was in progress when the process died,
    if any); a last line torn by a kill is truncated away. A bucket is evaluated by one process at a time, in
    order, so only the last ``_started`` line can lack its row."""
    if not path.exists():
        return set(), None
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with path.open("r+b") as fh:
            fh.truncate(end)
    done: set[str] = set()
    last_started: str | None = None
    for line in data[:end].splitlines():
        if not line:
            continue
        doc = orjson.loads(line)
        if STARTED in doc:
            last_started = doc[STARTED]
        else:
            done.add(doc["patient_id"])
    return done, (last_started if last_started is not None and last_started not in done else None)


def finish_bucket(journal: Path, done: Path) -> None:
    """Sort a complete bucket's journal rows by patient id into its ``.rows`` file (atomically)."""
    rows = [orjson.loads(line) for line in journal.read_bytes().splitlines() if _is_row(line)]
    rows.sort(key=lambda r: r["patient_id"])
    tmp = done.with_suffix(".tmp")
    tmp.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    os.replace(tmp, done)
    journal.unlink()


def iter_rows(path: Path) -> Iterator[Row]:
    with path.open("rb") as fh:
        for line in fh:
            row: Row = orjson.loads(line)
            yield row
