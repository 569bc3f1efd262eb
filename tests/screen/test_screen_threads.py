"""Screening workers evaluate in processes that have never had a second thread.

Once a process has started a thread, glibc's malloc and free take the arena lock on every call, for the rest of
the process and in every process forked from it (its `__libc_single_threaded` stays false). numpy's OpenBLAS
starts threads when pyarrow is imported, and the progress bar refreshes from a thread: neither may exist in the
driver before the workers fork. The run is in a fresh interpreter, since this one has imported pyarrow.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

import pytest
from screen_helpers import NOW

from cds.synthetic import write_bulk_export

_SCRIPT = """
import ctypes, io, sys
from datetime import date
from pathlib import Path

from rich.console import Console

import cds.screen.local as local

flag = ctypes.c_char.in_dll(ctypes.CDLL(None), "__libc_single_threaded")
seen = Path(sys.argv[3])
real = local.evaluate_patient


def recording(*args, **kwargs):
    with seen.open("a") as fh:
        fh.write(str(flag.value[0]) + "\\n")
    return real(*args, **kwargs)


local.evaluate_patient = recording
console = Console(file=io.StringIO(), force_terminal=True)
result = local.screen_local(
    Path(sys.argv[1]), Path(sys.argv[2]), date.fromisoformat(sys.argv[4]), processes=1, progress=True, console=console
)
assert result.complete
print("pyarrow" in sys.modules)
"""


def _glibc_flag_available() -> bool:
    try:
        ctypes.c_char.in_dll(ctypes.CDLL(None), "__libc_single_threaded")
    except (OSError, ValueError):
        return False
    return True


@pytest.mark.skipif(not _glibc_flag_available(), reason="needs glibc's __libc_single_threaded (glibc 2.32+)")
def test_workers_never_had_a_second_thread(tmp_path: Path) -> None:
    export, out, seen = tmp_path / "export", tmp_path / "out", tmp_path / "seen.txt"
    write_bulk_export(export, 6, seed=11)
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(export), str(out), str(seen), NOW.isoformat()],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"  # the table was written: pyarrow is imported, after the workers ran
    flags = seen.read_text().split()
    assert len(flags) == 6
    assert set(flags) == {"1"}, "a worker evaluated in a process that has had a second thread"
