"""The same screening as a PySpark job. Lines are keyed by patient and sorted by it (a range-partitioned
shuffle), so each patient's lines are consecutive in one partition; patients are evaluated inside the
executors (one Evaluator per Python worker process, cds.screen.worker); the sorted rows are cached, then
streamed to the driver one partition at a time into the same writer as the local run (cds.screen.output),
so the two tables are identical.

Two passes over the input: one counts lines by file and outcome (cheap: a parse, no evaluation), one
evaluates. Executors need this package installed (``pip install trd-cds``, or ``--py-files``) with its
``rules/``; the export directory must be readable by every executor (a shared or distributed filesystem).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from datetime import date
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson

from cds.fhir.bulk import FileStats, classify, export_files
from cds.screen.local import ScreenResult, write_summary
from cds.screen.output import write_table
from cds.screen.summary import SummaryBuilder
from cds.screen.worker import evaluate_patient


def _key_line(line: bytes) -> list[tuple[str, bytes]]:
    if not line.strip():
        return []
    pid = classify(line)[0]
    return [] if pid is None else [(pid, line)]


def _outcome(name: str, line: bytes) -> tuple[str, str]:
    if not line.strip():
        return name, "blank"
    pid, bad, is_patient = classify(line)
    return name, (bad or "no_patient") if pid is None else ("patient" if is_patient else "resource")


def _evaluate(now: str) -> Any:
    when = date.fromisoformat(now)

    def run(pairs: Iterable[tuple[str, bytes]]) -> Iterator[tuple[str, bytes]]:
        # the partition is sorted by patient id: each patient's lines are consecutive
        for pid, group in groupby(pairs, key=itemgetter(0)):
            yield pid, orjson.dumps(evaluate_patient(pid, [line for _, line in group], when))

    return run


def _file_stats(counts: dict[tuple[str, str], int], names: list[str]) -> list[FileStats]:
    stats = {n: FileStats(n) for n in names}
    for (name, outcome), n in counts.items():
        s = stats[name]
        if outcome == "blank":
            continue
        s.lines += n
        if outcome in ("patient", "resource"):
            s.resources += n
            s.patients += n if outcome == "patient" else 0
        else:
            s.bad[outcome] = s.bad.get(outcome, 0) + n
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


def screen_spark(
    export_dir: Path,
    out_dir: Path,
    now: date,
    *,
    spark: Any = None,
    master: str | None = None,
    partitions: int | None = None,
) -> ScreenResult:
    """Screen the export with Spark (an existing session, or one for ``master``) into ``out_dir``."""
    files = export_files(export_dir)
    if not files:
        raise FileNotFoundError(f"no .ndjson or .ndjson.gz files in {export_dir}")
    from pyspark import StorageLevel

    own = spark is None
    session = spark if spark is not None else spark_session(master)
    try:
        sc = session.sparkContext
        per_file = [sc.textFile(str(p.resolve()), use_unicode=False) for p in files]
        counts = sc.union(
            [rdd.map(lambda line, name=p.name: _outcome(name, line)) for rdd, p in zip(per_file, files, strict=True)]
        ).countByValue()
        stats = _file_stats(dict(counts), [p.name for p in files])
        n_parts = partitions or max(sc.defaultParallelism * 4, sum(s.patients for s in stats) // 2000, 1)
        # Sorting by patient id (a range partitioning, spilled to disk by Spark as needed) both brings each
        # patient's lines together and orders the output; evaluation then streams through each partition.
        rows = (
            sc.union(per_file)
            .flatMap(_key_line)
            .sortByKey(numPartitions=n_parts)
            .mapPartitions(_evaluate(now.isoformat()), preservesPartitioning=True)
            .values()
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        rows.count()  # evaluate every partition in parallel; the driver then reads them in order
        summary = SummaryBuilder()
        n = write_table((orjson.loads(r) for r in rows.toLocalIterator()), out_dir, summary)
        rows.unpersist()
    finally:
        if own:
            session.stop()
    report = summary.report(stats, "spark")
    report["master"] = sc.master
    write_summary(out_dir, report)
    return ScreenResult(True, n, n, report)
