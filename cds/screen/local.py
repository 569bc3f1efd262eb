"""Screen a bulk export on one machine: partition by patient on disk, evaluate buckets in a process pool,
merge the sorted buckets into the table. Resumable (see cds.screen.workdir); memory bounded by one bucket
per process plus the merge (one row per bucket).

Each bucket's patients are evaluated in a child forked from the worker (cds.screen.supervise), so a patient
that kills its process (a crash in the rules engine's C core) gets an error row and the run goes on. The
journal still records which patient was in progress, for a worker that dies itself (killed, out of memory):
the next run evaluates that patient alone first (`_isolate`)."""

from __future__ import annotations

import heapq
import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from cds.fhir.bulk import FileStats, choose_buckets, export_files, load_shared, partition_file, read_bucket
from cds.knowledge import cached_knowledge
from cds.screen.output import write_table
from cds.screen.progress import make_progress
from cds.screen.row import crash_message, error_row
from cds.screen.summary import SummaryBuilder
from cds.screen.supervise import supervised
from cds.screen.workdir import (
    Manifest,
    WorkDir,
    fingerprint,
    finish_bucket,
    iter_rows,
    recover_journal,
    started_line,
)
from cds.screen.worker import adopt_inherited, evaluate_patient, evaluator

SUMMARY_NAME = "summary.json"


@dataclass
class ScreenResult:
    complete: bool
    patients: int  # rows in the table (complete runs) or evaluated so far
    evaluated_now: int  # patients evaluated by this invocation
    report: dict[str, Any] | None


# -- worker side (module globals set once per process by _init) ---------------------------------------------
_STATE: dict[str, Any] = {}


def _init(work_root: str, now: str, counter: Any, finished: Any, limit: int | None, shared: dict[str, bytes]) -> None:
    _STATE.update(
        work=WorkDir(Path(work_root).parent),
        now=date.fromisoformat(now),
        counter=counter,  # patients this run has taken on (the limit counts them)
        finished=finished,  # patients this run has a row for (the progress bar shows them)
        limit=limit,
        shared=shared,
    )


def _partition(args: tuple[str, str, int]) -> FileStats:
    path, bucket_dir, buckets = args
    return partition_file(Path(path), Path(bucket_dir), buckets)


def _reserve() -> bool:
    """Count one more patient for this run; False once the run's limit (a test/ops hook) is reached."""
    counter, limit = _STATE["counter"], _STATE["limit"]
    with counter.get_lock():
        if limit is not None and counter.value >= limit:
            return False
        counter.value += 1
        return True


def _screen_bucket(b: int) -> bool:
    """Evaluate the patients of bucket b not yet in its journal; True when the bucket is complete."""
    work: WorkDir = _STATE["work"]
    journal, done = work.journal(b), work.done(b)
    if done.exists():
        return True
    seen, _ = recover_journal(journal)  # a patient in progress at a death was evaluated alone (_isolate) already
    bucket = work.bucket_dir(b)
    todo: list[tuple[str, list[bytes]]] = []
    complete = True
    for pid, lines in read_bucket(bucket) if bucket.exists() else iter(()):
        if pid in seen:
            continue
        if not _reserve():
            complete = False
            break
        todo.append((pid, lines))
    if todo:
        _evaluate_supervised(todo, journal)
    if complete:
        journal.touch()  # a bucket with no patient left to evaluate still gets its (empty) rows file
        finish_bucket(journal, done)
    return complete


def _evaluate_supervised(todo: list[tuple[str, list[bytes]]], journal: Path) -> None:
    """Rows for ``todo``, evaluated in forked children, appended to the journal in order. Before each patient's row
    the journal names it as started, so that the next run knows which patient this process was on if it dies."""
    now, shared, finished = _STATE["now"], _STATE["shared"], _STATE["finished"]
    version = evaluator().knowledge.version  # built here, before the children fork: they inherit it

    def evaluate(pid: str, lines: list[bytes]) -> bytes:
        return orjson.dumps(evaluate_patient(pid, lines, now, shared))

    def crashed(pid: str, code: int) -> bytes:
        return orjson.dumps(error_row(pid, crash_message(code), version, now.isoformat()))

    with journal.open("ab") as fh:
        fh.write(started_line(todo[0][0]))
        fh.flush()
        for i, (_, row) in enumerate(supervised(todo, evaluate, crashed, adopt_inherited), 1):
            fh.write(row + b"\n")
            if i < len(todo):
                fh.write(started_line(todo[i][0]))
            fh.flush()  # the checkpoint: once a row is written the patient is never evaluated again
            with finished.get_lock():
                finished.value += 1


def _evaluate_alone(b: int, patient_id: str) -> None:
    """In a child process of its own: evaluate one patient of bucket b and append its row to the journal."""
    work: WorkDir = _STATE["work"]
    for pid, lines in read_bucket(work.bucket_dir(b)):
        if pid == patient_id:
            row = evaluate_patient(pid, lines, _STATE["now"], _STATE["shared"])
            with work.journal(b).open("ab") as fh:
                fh.write(orjson.dumps(row) + b"\n")
            return


def _isolate(ctx: Any, work: WorkDir, buckets: int) -> None:
    """Evaluate, each alone in a child process, the patients a dead worker was evaluating (a journal's last
    ``_started`` line without its row). One that kills its process again gets an error row, so a patient that
    crashes the engine cannot stop every resumed run; one whose worker died for another reason (a kill, the
    pool stopping its siblings) is evaluated normally. Runs before the pool starts its workers."""
    version, now = cached_knowledge().version, _STATE["now"].isoformat()
    for b in range(buckets):
        if work.done(b).exists():
            continue
        _, unfinished = recover_journal(work.journal(b))
        if unfinished is None or not _reserve():
            continue
        child = ctx.Process(target=_evaluate_alone, args=(b, unfinished))
        child.start()
        child.join()
        if child.exitcode != 0:
            with work.journal(b).open("ab") as fh:
                fh.write(orjson.dumps(error_row(unfinished, crash_message(child.exitcode), version, now)) + b"\n")


# -- driver side --------------------------------------------------------------------------------------------
def _wanted(files: list[Path], now: date, buckets: int | None) -> Manifest:
    return Manifest(
        fingerprint(files), now.isoformat(), cached_knowledge().version, buckets or choose_buckets(files), []
    )


def _resumed(work: WorkDir, wanted: Manifest) -> Manifest | None:
    """The manifest of an earlier run of the same inputs, now and knowledge, if there is one."""
    have = work.load_manifest()
    return have if have is not None and have.same_run(wanted) else None


def _prepare(
    export_dir: Path, files: list[Path], work: WorkDir, now: date, buckets: int | None, pool: ProcessPoolExecutor
) -> Manifest:
    if not files:
        raise FileNotFoundError(f"no .ndjson or .ndjson.gz files in {export_dir}")
    wanted = _wanted(files, now, buckets)
    have = _resumed(work, wanted)
    if have is not None:
        return have
    work.clear()
    work.buckets.mkdir(parents=True)
    work.rows.mkdir(parents=True)
    tasks = [(str(p), str(work.buckets), wanted.buckets) for p in files]
    # biggest files first, so the pool stays busy to the end
    tasks.sort(key=lambda t: -Path(t[0]).stat().st_size)
    stats = list(pool.map(_partition, tasks))
    wanted.files = sorted(stats, key=lambda s: s.name)
    work.save_manifest(wanted)
    return wanted


def _merge(work: WorkDir, buckets: int) -> Any:
    streams = [iter_rows(work.done(b)) for b in range(buckets)]
    return heapq.merge(*streams, key=lambda r: r["patient_id"])


def screen_local(
    export_dir: Path,
    out_dir: Path,
    now: date,
    *,
    processes: int | None = None,
    buckets: int | None = None,
    limit: int | None = None,
    fresh: bool = False,
    progress: bool = True,
    console: Console | None = None,
) -> ScreenResult:
    """Screen every patient of the export into ``out_dir`` (screening.parquet, screening.csv, summary.json).

    ``limit`` stops after that many patients evaluated by this call, leaving the run to be resumed (the
    same call without ``limit``); ``fresh`` discards an earlier unfinished run instead of resuming it."""
    processes = processes or os.cpu_count() or 1
    work = WorkDir(out_dir)
    if fresh:
        work.clear()
    ctx = mp.get_context("fork")
    counter, finished = ctx.Value("q", 0), ctx.Value("q", 0)
    files = export_files(export_dir)
    # read before the workers fork, which inherit it (a formulary's size; see cds.fhir.bulk.load_shared)
    shared = load_shared(files)
    init_args = (str(work.root), now.isoformat(), counter, finished, limit, shared)
    _init(*init_args)
    if files:
        resumed = _resumed(work, _wanted(files, now, buckets))
        if resumed is not None:
            _isolate(ctx, work, resumed.buckets)
    # Even one process is a pool worker, not this process: the progress bar's refresh thread runs here, and a
    # process that has ever had a second thread pays for it in every malloc (cds.screen.output). The workers
    # fork at the pool's first task, before any thread exists here.
    pool = ProcessPoolExecutor(processes, mp_context=ctx, initializer=_init, initargs=init_args)
    pool.submit(int).result()  # forks every worker now (a resumed run partitions nothing)
    try:
        manifest = _prepare(export_dir, files, work, now, buckets, pool)
        pending = [b for b in range(manifest.buckets) if not work.done(b).exists()]
        already = work.count_rows(manifest.buckets)
        with make_progress(console, progress) as bar:
            task = bar.add_task("screening", total=max(manifest.patients, already), completed=already)
            # A worker killed by a signal (the out-of-memory killer) breaks the pool: the run stops with
            # BrokenProcessPool instead of hanging, and the next run resumes from the journals. (A patient that
            # crashes the engine kills only the child evaluating it: see _evaluate_supervised.)
            futures = {pool.submit(_screen_bucket, b) for b in pending}
            complete = True
            while futures:
                done, futures = wait(futures, timeout=0.25, return_when=FIRST_COMPLETED)
                complete = all([f.result() for f in done]) and complete
                bar.update(task, completed=already + finished.value)
            bar.update(task, completed=already + finished.value)
    except BrokenProcessPool:
        raise RuntimeError("a screening worker process died; run again to resume from the checkpoint") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    evaluated = int(counter.value)
    if not complete:
        return ScreenResult(False, already + evaluated, evaluated, None)
    summary = SummaryBuilder()
    n = write_table(_merge(work, manifest.buckets), out_dir, summary)
    report = summary.report(manifest.files, "local")
    report["processes"] = processes
    write_summary(out_dir, report)
    work.clear()
    return ScreenResult(True, n, evaluated, report)


def write_summary(out_dir: Path, report: dict[str, Any]) -> None:
    tmp = out_dir / f".{SUMMARY_NAME}.tmp"
    tmp.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    os.replace(tmp, out_dir / SUMMARY_NAME)
