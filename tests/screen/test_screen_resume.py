"""Interrupted runs resume: the final table is complete, without duplicates, and equal to an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from screen_helpers import N_PATIENTS, NOW, read_bytes

from cds.fhir.bulk import bucket_of
from cds.screen import local, screen_local
from cds.screen.workdir import WorkDir, started_line


def test_stop_after_k_then_resume(export_dir: Path, reference_run: Path, tmp_path: Path) -> None:
    first = screen_local(export_dir, tmp_path, NOW, processes=2, buckets=5, limit=13, progress=False)
    assert not first.complete and first.evaluated_now == 13
    assert not (tmp_path / "screening.parquet").exists()
    assert WorkDir(tmp_path).count_rows(5) == 13
    second = screen_local(export_dir, tmp_path, NOW, processes=1, buckets=5, limit=10, progress=False)
    assert not second.complete and second.evaluated_now == 10
    last = screen_local(export_dir, tmp_path, NOW, processes=2, buckets=5, progress=False)
    assert last.complete and last.evaluated_now == N_PATIENTS - 23  # nobody evaluated twice
    assert read_bytes(tmp_path) == read_bytes(reference_run)


def _lines(journal: Path) -> int:
    try:
        return journal.read_bytes().count(b"\n")
    except FileNotFoundError:  # renamed, its bucket finished, between the listing and the read
        return 0


def test_killed_process_then_resume(export_dir: Path, reference_run: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "cds.cli", "screen", str(export_dir), "--out", str(tmp_path)]
    cmd += ["--now", NOW.isoformat(), "--processes", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    journals = tmp_path / "_work" / "rows"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            done = sum(_lines(p) for p in journals.glob("*")) if journals.exists() else 0
            if done >= 5:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (tmp_path / "screening.parquet").exists(), "the run finished before it could be killed"
    result = screen_local(export_dir, tmp_path, NOW, processes=2, progress=False)
    assert result.complete and result.patients == N_PATIENTS
    assert result.evaluated_now < N_PATIENTS
    assert read_bytes(tmp_path) == read_bytes(reference_run)


def test_other_inputs_start_afresh(export_dir: Path, export_gz: Path, tmp_path: Path) -> None:
    screen_local(export_dir, tmp_path, NOW, processes=1, limit=5, progress=False)
    result = screen_local(export_gz, tmp_path, NOW, processes=1, progress=False)  # other files: not a resume
    assert result.complete and result.evaluated_now == N_PATIENTS


VICTIM = "syn-3000007"


def _crash_on_victim(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the victim's evaluation kill its process, as a crash in the rules engine's C core would."""
    evaluate = local.evaluate_patient

    def crashing(patient_id: str, *args: Any) -> Any:
        if patient_id == VICTIM:
            os._exit(70)
        return evaluate(patient_id, *args)

    monkeypatch.setattr(local, "evaluate_patient", crashing)  # the forked workers and their children inherit it


def _check_victim_row(out: Path, reference_run: Path, report: dict[str, Any] | None) -> None:
    assert report is not None and report["not_evaluated"] == {"EngineCrash": 1}
    rows = pq.read_table(out / "screening.parquet").to_pylist()
    expected = pq.read_table(reference_run / "screening.parquet").to_pylist()
    crashed = [r for r in rows if r["patient_id"] == VICTIM]
    assert crashed[0]["evaluated"] is False and "died twice" in crashed[0]["error"]
    assert [r for r in rows if r["patient_id"] != VICTIM] == [r for r in expected if r["patient_id"] != VICTIM]


@pytest.mark.parametrize("processes", [1, 2])
def test_a_patient_that_crashes_the_engine_gets_an_error_row_and_the_run_goes_on(
    processes: int, export_dir: Path, reference_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The patient is evaluated in a child of the worker: its death costs that child, the patient is tried once
    more alone, and a second death gives it an error row. The run completes in one go."""
    _crash_on_victim(monkeypatch)
    result = screen_local(export_dir, tmp_path, NOW, processes=processes, progress=False)
    assert result.complete and result.patients == N_PATIENTS and result.evaluated_now == N_PATIENTS
    _check_victim_row(tmp_path, reference_run, result.report)


def test_the_patient_a_dead_worker_was_on_is_evaluated_alone_on_resume(
    export_dir: Path, reference_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that died itself (killed) left the victim as started without a row in its bucket's journal. The
    next run evaluates it alone before anything else: it dies again there, so it gets the error row."""
    first = screen_local(export_dir, tmp_path, NOW, processes=1, buckets=3, limit=1, progress=False)
    assert not first.complete
    journal = WorkDir(tmp_path).journal(bucket_of(VICTIM, 3))
    with journal.open("ab") as fh:
        fh.write(started_line(VICTIM))
    _crash_on_victim(monkeypatch)
    result = screen_local(export_dir, tmp_path, NOW, processes=2, buckets=3, progress=False)
    assert result.complete and result.patients == N_PATIENTS
    _check_victim_row(tmp_path, reference_run, result.report)
