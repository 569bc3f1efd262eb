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

from cds.screen import local, screen_local
from cds.screen.workdir import WorkDir


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


def test_killed_process_then_resume(export_dir: Path, reference_run: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "cds.cli", "screen", str(export_dir), "--out", str(tmp_path)]
    cmd += ["--now", NOW.isoformat(), "--processes", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    journals = tmp_path / "_work" / "rows"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            done = sum(p.read_bytes().count(b"\n") for p in journals.glob("*")) if journals.exists() else 0
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


def test_a_patient_that_crashes_the_engine_gets_an_error_row(
    export_dir: Path, reference_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A patient whose evaluation kills the process (as a crash in the rules engine's C core would) stops the
    run; the next run evaluates that patient alone, sees the process die again, writes an error row for it
    and screens everyone else."""
    victim = "syn-3000007"
    evaluate = local.evaluate_patient

    def crashing(patient_id: str, *args: Any) -> Any:
        if patient_id == victim:
            os._exit(70)
        return evaluate(patient_id, *args)

    monkeypatch.setattr(local, "evaluate_patient", crashing)  # the forked workers inherit it
    with pytest.raises(RuntimeError, match="worker process died"):
        screen_local(export_dir, tmp_path, NOW, processes=2, progress=False)
    result = screen_local(export_dir, tmp_path, NOW, processes=2, progress=False)
    assert result.complete and result.patients == N_PATIENTS and result.report is not None
    assert result.report["not_evaluated"] == {"EngineCrash": 1}
    rows = pq.read_table(tmp_path / "screening.parquet").to_pylist()
    expected = pq.read_table(reference_run / "screening.parquet").to_pylist()
    crashed = [r for r in rows if r["patient_id"] == victim]
    assert crashed[0]["evaluated"] is False and "died twice" in crashed[0]["error"]
    assert [r for r in rows if r["patient_id"] != victim] == [r for r in expected if r["patient_id"] != victim]
