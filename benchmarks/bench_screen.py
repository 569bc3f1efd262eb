"""Benchmark `cds screen`: patients/s and peak memory, local 1 vs 2 processes, Spark local[1] vs local[2],
and the ratio to just parsing the NDJSON.

    python benchmarks/make_bulk_export.py /tmp/bench/export-1k --patients 1000
    python benchmarks/bench_screen.py /tmp/bench/export-1k --configs local-1 local-2 spark-1 spark-2 parse
    python benchmarks/bench_screen.py /tmp/bench/export-1k --profile   # a local run's time per step
    python benchmarks/bench_screen.py /tmp/bench/export-1k --attribution   # per line: full parse vs fast path
    python benchmarks/bench_screen.py /tmp/bench/export-1k --read-lines    # reading lines: igzip vs the stdlib gzip

Each configuration runs in a fresh subprocess; its peak memory is the largest sum of RSS over the whole
process tree (driver, pool workers, JVM, Spark Python workers), sampled every 0.1 s from /proc. patients/s
counts wall time from start to the written table (partitioning and merge included; Spark session start-up
is reported separately and not included). `parse` reads every line and `orjson.loads` it, one process.

`CPU s` is the CPU time (user + system) of the whole process tree, from the same /proc samples (each process's
last sample, so up to 0.1 s per process is missed); it includes interpreter start-up, building each worker's
Evaluator and, for Spark, the JVM's start-up. `per CPU-s` = patients / CPU s: the rate per fully used core,
which other load on a shared machine distorts much less than wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, as bench_evaluate.py

NOW = date(2026, 1, 15)


_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree_sample(root: int, cpu: dict[int, float]) -> int:
    """Sum of RSS (bytes) of root and all its descendants; records each one's CPU seconds so far in ``cpu``."""
    children: dict[int, list[int]] = {}
    stat: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        stat[pid] = fields
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        own = stat.get(pid)
        if own is not None:
            total += int(own[21]) * _PAGE
            cpu[pid] = (int(own[11]) + int(own[12])) / _TICK  # utime + stime
        stack.extend(children.get(pid, ()))
    return total


def _inner(export: Path, config: str, keep: Path | None = None) -> dict[str, object]:
    if config == "parse":
        import orjson

        from cds.fhir.bulk import export_files, iter_lines

        start = time.perf_counter()
        lines = 0
        for path in export_files(export):
            for line in iter_lines(path):
                with contextlib.suppress(orjson.JSONDecodeError):
                    orjson.loads(line)
                lines += 1
        return {"seconds": time.perf_counter() - start, "lines": lines}
    engine, n = config.split("-")
    with contextlib.ExitStack() as stack:
        if keep is None:
            out = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-screen-"))
        else:
            out = str(keep / f"{export.name}-{config}")
            shutil.rmtree(out, ignore_errors=True)
        if engine == "local":
            from cds.screen import screen_local

            start = time.perf_counter()
            result = screen_local(export, Path(out), NOW, processes=int(n), progress=False)
            return {"seconds": time.perf_counter() - start, "patients": result.patients}
        from cds.screen.spark import screen_spark, spark_session

        t0 = time.perf_counter()
        session = spark_session(f"local[{n}]")
        start = time.perf_counter()
        result = screen_spark(export, Path(out), NOW, spark=session)
        seconds = time.perf_counter() - start
        session.stop()
        return {"seconds": seconds, "patients": result.patients, "session_start": start - t0}


def _profile(export: Path) -> None:
    """Where a local run's time goes per patient: its steps run by hand in this process (process time)."""
    import heapq

    import orjson

    from cds.fhir.bulk import export_files, iter_lines, partition_file, read_bucket
    from cds.fhir.reader import read_lines
    from cds.screen.output import write_table
    from cds.screen.row import row_from_evaluation
    from cds.screen.summary import SummaryBuilder
    from cds.screen.workdir import finish_bucket, iter_rows
    from cds.screen.worker import evaluator

    steps: dict[str, float] = {}

    def add(step: str, start: float) -> float:
        now = time.process_time()
        steps[step] = steps.get(step, 0.0) + now - start
        return now

    ev, files, buckets, n = evaluator(), export_files(export), 16, 0
    with tempfile.TemporaryDirectory(prefix="bench-screen-profile-") as tmp:
        work, rows = Path(tmp) / "buckets", Path(tmp) / "rows"
        rows.mkdir()
        t = time.process_time()
        for path in export_files(export):
            for _ in iter_lines(path):
                pass
        t = add("read lines only (part of partition)", t)
        for path in files:
            partition_file(path, work, buckets)
        t = add("partition (read, attribute, write)", t)
        for b in range(buckets):
            journal, done = rows / f"{b}.journal", rows / f"{b}.rows"
            with journal.open("ab") as fh:
                for pid, lines in read_bucket(work / f"b{b:05d}"):
                    t = add("read bucket + group", t)
                    ordered = sorted(lines)
                    t = add("sort a patient's lines", t)
                    raw = read_lines(ordered)
                    t = add("parse (orjson)", t)
                    evaluation = ev.evaluate_raw(raw, NOW)
                    t = add("EVALUATE", t)
                    row = row_from_evaluation(pid, evaluation)
                    t = add("row", t)
                    fh.write(orjson.dumps(row) + b"\n")
                    fh.flush()
                    t = add("journal", t)
                    n += 1
            finish_bucket(journal, done)
            t = add("finish bucket", t)
        merged = heapq.merge(*(iter_rows(rows / f"{b}.rows") for b in range(buckets)), key=lambda r: r["patient_id"])
        write_table(merged, Path(tmp) / "out", SummaryBuilder())
        add("merge + write table", t)
    evaluate = steps["EVALUATE"]
    print(f"{n:,} patients; ms per patient (process time) and % of evaluation")
    for step, seconds in steps.items():
        print(f"{step:38} {1000 * seconds / n:7.3f}  {100 * seconds / evaluate:6.1f} %")
    over = sum(v for k, v in steps.items() if k != "EVALUATE" and not k.startswith("read lines only"))
    parse = steps["parse (orjson)"]
    print(f"{'overhead (all but evaluation)':38} {1000 * over / n:7.3f}  {100 * over / evaluate:6.1f} %")
    rest = over - parse
    print(f"{'  without the parse the engine needs':38} {1000 * rest / n:7.3f}  {100 * rest / evaluate:6.1f} %")


def _outer(export: Path, config: str, keep: Path | None) -> dict[str, object]:
    cmd = [sys.executable, __file__, str(export), "--inner", config]
    if keep is not None:
        cmd += ["--keep", str(keep)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    peak, cpu = 0, dict[int, float]()
    while proc.poll() is None:
        peak = max(peak, _tree_sample(proc.pid, cpu))
        time.sleep(0.1)
    out = proc.stdout.read() if proc.stdout else b""
    if proc.returncode != 0:
        raise SystemExit(f"{config} failed with exit status {proc.returncode}")
    res: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
    res.update(config=config, export=str(export), peak_rss_mb=round(peak / 2**20), cpu_s=round(sum(cpu.values()), 1))
    return res


def _attribution(export: Path, passes: int = 5) -> None:
    """Process time per line of attributing a line to its patient: the full parse, its classification, and the
    fast path `cds screen` uses (cds.fhir.bulk.classify); minimum of ``passes`` passes over every line."""
    import orjson

    from cds.fhir.bulk import classify, classify_by_full_parse, export_files, iter_lines

    lines = [line for p in export_files(export) for line in iter_lines(p)]

    def full_parse(line: bytes) -> object:
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:
            return None

    print(f"{len(lines):,} lines, {sum(map(len, lines)) / len(lines):.0f} bytes each on average")
    steps = [("orjson.loads", full_parse), ("classify_by_full_parse", classify_by_full_parse)]
    steps.append(("classify (fast path)", classify))
    for name, step in steps:
        best = min(_per_line(step, lines) for _ in range(passes))
        print(f"{name:24} {best:6.2f} µs per line")


def _read_lines(export: Path) -> None:
    """CPU seconds to read every line of the export's files as a run does (cds.fhir.ndjson.iter_lines: gzip through
    ISA-L's igzip) and, for the gzip files, through the standard library's gzip instead."""
    import gzip

    from cds.fhir.bulk import export_files, iter_lines

    files = export_files(export)
    start = time.process_time()
    n = sum(1 for path in files for _ in iter_lines(path))
    ours = time.process_time() - start
    print(f"{n:,} lines; iter_lines (igzip for .gz): {ours:.1f} CPU s")
    compressed = [path for path in files if path.name.endswith(".gz")]
    if compressed:
        start = time.process_time()
        for path in compressed:
            with gzip.open(path, "rb") as fh:
                for _ in fh:
                    pass
        stdlib = time.process_time() - start
        start = time.process_time()
        for path in compressed:
            for _ in iter_lines(path):
                pass
        again = time.process_time() - start
        ratio = stdlib / again
        print(f"gzip files only: standard library gzip {stdlib:.1f} CPU s, iter_lines {again:.1f} ({ratio:.1f}x)")


def _per_line(step: Callable[[bytes], object], lines: list[bytes]) -> float:
    start = time.process_time()
    for line in lines:
        step(line)
    return (time.process_time() - start) / len(lines) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("exports", type=Path, nargs="+")
    ap.add_argument("--configs", nargs="+", default=["parse", "local-1", "local-2", "spark-1", "spark-2"])
    ap.add_argument("--inner", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help="append results as JSON lines to this file")
    ap.add_argument("--keep", type=Path, help="write each run's result to KEEP/<export>-<config> and keep it")
    ap.add_argument("--profile", action="store_true", help="break a local run's time per patient into its steps")
    ap.add_argument("--attribution", action="store_true", help="time per line of attributing lines to patients")
    ap.add_argument("--read-lines", action="store_true", help="CPU time to read the lines: igzip vs stdlib gzip")
    args = ap.parse_args()
    if args.read_lines:
        _read_lines(args.exports[0])
        return
    if args.attribution:
        _attribution(args.exports[0])
        return
    if args.profile:
        _profile(args.exports[0])
        return
    if args.inner:
        print(json.dumps(_inner(args.exports[0], args.inner, args.keep)))
        return
    from cds import BUILD

    print(f"build: {BUILD.note}")
    print(
        f"{'export':24} {'config':8} {'patients':>9} {'seconds':>8} {'patients/s':>11} {'x parse':>8} "
        f"{'CPU s':>7} {'per CPU-s':>9} {'peak MB':>8}"
    )
    for export in args.exports:
        parse_s = None
        for config in args.configs:
            res = _outer(export, config, args.keep)
            seconds = float(res["seconds"])  # type: ignore[arg-type]
            if config == "parse":
                parse_s = seconds
                patients = (
                    sum(1 for _ in (export / "Patient.ndjson").open()) if (export / "Patient.ndjson").exists() else 0
                )
                res["patients"] = patients or None
            n = res.get("patients")
            rate = f"{n / seconds:11,.0f}" if isinstance(n, int) and n else f"{'':>11}"
            ratio = f"{seconds / parse_s:8.1f}" if parse_s and config != "parse" else f"{'':>8}"
            extra = f"  (session start {res['session_start']:.1f} s)" if "session_start" in res else ""
            cpu_s = float(res["cpu_s"])  # type: ignore[arg-type]
            per_cpu = f"{n / cpu_s:9,.0f}" if isinstance(n, int) and n and cpu_s else f"{'':>9}"
            print(
                f"{export.name:24} {config:8} {n or '':>9} {seconds:8.1f} {rate} {ratio} {cpu_s:7.1f} {per_cpu} "
                f"{res['peak_rss_mb']:8}{extra}",
                flush=True,
            )
            if args.json:
                with args.json.open("a") as fh:
                    fh.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
