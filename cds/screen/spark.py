"""The same screening as a PySpark job, in one pass over the input and one shuffle.

1. Map (one task per gzip file, or per 64 MB range of a plain file): the task reads its lines in Python, as
   the local run does (``cds.fhir.bulk.iter_lines``: the lines never pass through the JVM before the
   shuffle), classifies each once (``cds.fhir.bulk.attribute``, the local partitioning's function) and keys
   it by its patient's bucket, ``crc32(id) % partitions``; consecutive lines of one patient travel as one
   record. Each task also emits its line counts (lines, resources, bad lines by reason) as one extra record,
   so the summary needs no counting pass.
2. Shuffle: ``partitionBy`` on that key (a hash partitioning: no sampling job, unlike a range partitioning),
   so each partition holds every line of its patients, like a local bucket.
3. Reduce: each partition is grouped by patient in memory (about one local bucket's size) and evaluated
   patient by patient in id order with the Python worker process's one Evaluator (``cds.screen.worker``;
   ``spark.python.worker.reuse`` keeps it across tasks), inside a child forked for the partition so that a
   patient that kills its process gets an error row instead of failing the job (``cds.screen.supervise``).
   Rows leave the Python workers as JSON bytes.
4. The rows (a few hundred bytes per patient) are cached, all partitions evaluated in parallel, then streamed
   to the driver one partition at a time; each partition's rows are already sorted, so the driver spills them
   as sorted runs to a scratch folder in ``--out`` and k-way merges the runs into the same writer as the
   local run (``cds.screen.output``). The two tables are identical; the driver holds one row per run.

Executors need this package installed (``pip install trd-cds``, or ``--py-files``) with its ``rules/``, and
must read the export directory at the same path as the driver (a shared filesystem).
"""

from __future__ import annotations

import heapq
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import IO, Any

import orjson

from cds.fhir.bulk import (
    FileStats,
    attribute,
    bucket_of,
    choose_buckets,
    export_files,
    group_lines,
    iter_lines,
    load_shared,
)
from cds.fhir.reader import BOM
from cds.screen.local import ScreenResult, write_summary
from cds.screen.output import write_table
from cds.screen.row import crash_message, error_row
from cds.screen.summary import SummaryBuilder
from cds.screen.supervise import supervised
from cds.screen.workdir import iter_rows
from cds.screen.worker import adopt_inherited, evaluate_patient, evaluator

# The key of the records that carry a map task's line counts. patient_of never returns an empty id, and the
# empty string sorts before every id, so these records are told apart from patients without ambiguity.
_STATS_KEY = ""
SPLIT_BYTES = 64 * 1024 * 1024  # plain input files are read in ranges of this size, one map task each


Split = tuple[str, str, int, int]  # path, file name, first byte, end byte (-1: the whole file)


def _splits(files: list[Path], split_bytes: int) -> list[Split]:
    """The map tasks: a gzip file whole (not splittable), a plain file in ranges of ``split_bytes``."""
    out: list[Split] = []
    for p in files:
        path, size = str(p.resolve()), p.stat().st_size
        if p.name.endswith(".gz") or size <= split_bytes:
            out.append((path, p.name, 0, -1))
        else:
            out += [(path, p.name, start, min(start + split_bytes, size)) for start in range(0, size, split_bytes)]
    return out


def _split_lines(path: str, start: int, end: int, stats: FileStats) -> Iterator[bytes]:
    """The lines that start in [start, end) of a plain file (a line belongs to the split it starts in), or
    every line of the file for end -1; line ends, blank lines and broken gzip handled as ``bulk.iter_lines``
    does."""
    if end < 0:
        yield from iter_lines(Path(path), stats)
        return
    with open(path, "rb") as fh:
        if start > 0:
            fh.seek(start - 1)
            fh.readline()  # to the first line that starts at or after ``start``
        pos = fh.tell()
        while pos < end:
            raw = fh.readline()
            if not raw:
                break
            line = (raw.removeprefix(BOM) if pos == 0 else raw).rstrip(b"\r\n")  # as iter_lines does
            pos += len(raw)
            if line[:1] == b"{" or line.strip():
                yield line


def _keyed_lines(partitions: int) -> Any:
    """Map side: each split's lines as (partition, (patient id, lines)), where lines are consecutive lines of
    one patient joined by newlines, then one (0, ("", counts)) record per split. Exports usually list a
    patient's resources together, so this sends about one record per patient and file through the shuffle
    instead of one per line (each record costs a pickling and a JVM object on both sides); memory stays one
    patient's lines. The files are read here, in Python, like the local run reads them: the lines never pass
    through the JVM before the shuffle."""

    def run(splits: Iterable[Split]) -> Iterator[tuple[int, tuple[str, bytes]]]:
        for path, name, start, end in splits:
            stats = FileStats(name)
            last_pid: str | None = None
            run_lines: list[bytes] = []
            for pid, line in attribute(_split_lines(path, start, end, stats), stats):
                if pid != last_pid:
                    if last_pid is not None:
                        yield bucket_of(last_pid, partitions), (last_pid, b"\n".join(run_lines))
                    last_pid, run_lines = pid, []
                run_lines.append(line)
            if last_pid is not None:
                yield bucket_of(last_pid, partitions), (last_pid, b"\n".join(run_lines))
            yield 0, (_STATS_KEY, orjson.dumps(stats.to_json()))

    return run


def _partition_of(key: int) -> int:
    return key  # the key already is the partition (partitionBy takes it modulo the partition count)


def _evaluate(now: str, shared: Any) -> Any:
    """Reduce side: one partition's lines -> its rows in patient id order, then the partition's counts.
    ``shared`` is the broadcast of the export's shared resources (cds.fhir.bulk.load_shared)."""
    when = date.fromisoformat(now)

    def run(records: Iterable[tuple[int, tuple[str, bytes]]]) -> Iterator[tuple[str, bytes]]:
        counts: list[bytes] = []

        def chunks() -> Iterator[tuple[str, bytes]]:
            for _, (pid, data) in records:
                if pid == _STATS_KEY:
                    counts.append(data)
                else:
                    yield pid, data

        patients = list(group_lines(chunks()))  # the whole partition is read before the first patient anyway
        version = evaluator().knowledge.version  # built before the children fork: they inherit it

        def evaluate(pid: str, group: list[bytes]) -> bytes:
            # lines never hold a newline (the readers split on it), so the split gives the lines back exactly
            lines = [line for data in group for line in data.split(b"\n")]
            return orjson.dumps(evaluate_patient(pid, lines, when, shared.value))

        def crashed(pid: str, code: int) -> bytes:
            return orjson.dumps(error_row(pid, crash_message(code), version, now))

        # A patient that kills its process would otherwise fail the task, its retries and the job.
        yield from supervised(patients, evaluate, crashed, adopt_inherited)
        for doc in counts:
            yield _STATS_KEY, doc

    return run


def _file_stats(docs: Iterable[bytes], names: list[str]) -> list[FileStats]:
    """The line counts of every map task, summed per input file."""
    stats = {n: FileStats(n) for n in names}
    for data in docs:
        part = FileStats.from_json(orjson.loads(data))
        stats[part.name].add(part)
    return [stats[n] for n in sorted(stats)]


def spark_session(master: str | None = None, app_name: str = "cds-screen") -> Any:
    """A SparkSession whose Python workers run this interpreter; ``master`` e.g. local[2], spark://host:7077."""
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.pyspark.python", sys.executable)
        .config("spark.pyspark.driver.python", sys.executable)
        .config("spark.python.worker.reuse", "true")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if master:
        builder = builder.master(master)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _spill_runs(rows: Iterable[tuple[str, bytes]], scratch: Path) -> tuple[list[Path], list[bytes]]:
    """Write the streamed rows as sorted runs (a new file whenever the id order breaks, i.e. at most once per
    partition); return the run files and the count records met on the way."""
    runs: list[Path] = []
    counts: list[bytes] = []
    fh: IO[bytes] | None = None
    last: str | None = None
    try:
        for pid, data in rows:
            if pid == _STATS_KEY:
                counts.append(data)
                continue
            if fh is None or last is None or pid <= last:
                if fh is not None:
                    fh.close()
                runs.append(scratch / f"run{len(runs):05d}.rows")
                fh = runs[-1].open("wb", buffering=256 * 1024)
            fh.write(data + b"\n")
            last = pid
    finally:
        if fh is not None:
            fh.close()
    return runs, counts


def screen_spark(
    export_dir: Path,
    out_dir: Path,
    now: date,
    *,
    spark: Any = None,
    master: str | None = None,
    partitions: int | None = None,
    split_bytes: int = SPLIT_BYTES,
) -> ScreenResult:
    """Screen the export with Spark (an existing session, or one for ``master``) into ``out_dir``."""
    files = export_files(export_dir)
    if not files:
        raise FileNotFoundError(f"no .ndjson or .ndjson.gz files in {export_dir}")
    from pyspark import StorageLevel

    own = spark is None
    session = spark if spark is not None else spark_session(master)
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".spark-runs-", dir=out_dir))
    try:
        try:
            sc = session.sparkContext
            master_url = sc.master
            # about one local bucket (32 MB of NDJSON) per partition, at least two per core
            n_parts = partitions or max(choose_buckets(files), 2 * sc.defaultParallelism)
            splits = _splits(files, split_bytes)
            shared = sc.broadcast(load_shared(files))  # read on the driver: a formulary's size
            keyed = sc.parallelize(splits, len(splits)).mapPartitions(_keyed_lines(n_parts))
            rows = (
                keyed.partitionBy(n_parts, _partition_of)
                .mapPartitions(_evaluate(now.isoformat(), shared))
                .persist(StorageLevel.MEMORY_AND_DISK)
            )
            rows.count()  # evaluate every partition in parallel; the driver then reads them one at a time
            runs, counts = _spill_runs(rows.toLocalIterator(), scratch)
            rows.unpersist()
        finally:
            if own:
                session.stop()
        stats = _file_stats(counts, [p.name for p in files])
        summary = SummaryBuilder()
        merged = heapq.merge(*(iter_rows(r) for r in runs), key=lambda r: r["patient_id"])
        n = write_table(merged, out_dir, summary)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report = summary.report(stats, "spark")
    report["master"] = master_url
    write_summary(out_dir, report)
    return ScreenResult(True, n, n, report)
